// vfi: VapourSynth API4 plugin for video frame interpolation.
//
//   core.vfi.RIFE(clip clip[, int multi=2, int factor_num, int factor_den, int fps_num, int fps_den,
//                 data model="4.0", data model_path, float scale=1.0 (0: automatic), int ensemble=0, int sc=0,
//                 float sc_threshold=0.12, data device="auto", data precision="auto", int tile=0,
//                 int tile_overlap=64])
//   core.vfi.RRIN(clip clip[, int multi=2, int factor_num, int factor_den, int fps_num, int fps_den,
//                 data model="rrin", data model_path, int sc=0, float sc_threshold=0.12, data device="auto",
//                 data precision="auto", int tile=0, int tile_overlap=64])
//
// tile_overlap's default is 64, or tile/4 for an explicit tile under 256 (it must stay below tile/2).
//
// Both filters are one createInterpolation and one getFrame; a FilterKind row holds what differs.
//
// The plugin owns the argument checks, the output VideoInfo, the mapping output frame -> (source a, a+1, t), the
// lazy frame requests and the frame properties. The pixels come from a Python engine (vsrife.engine, see
// docs/INTERFACES.md) reached through pybridge.
//
// Graph: RGBS/RGBH clips go straight to the interpolating filter. Any other constant format is converted with the
// core's resize to RGBS, interpolated, converted back, and a small selector returns the untouched source frames
// for the outputs that need no inference, so those stay bit-identical to the input:
//     final = selector(src, resize(interp(resize(src))))
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <VSHelper4.h>
#include <VapourSynth4.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "pybridge.h"
#include "rate.h"

namespace vfi {
namespace {

// What differs between the interpolation filters of this plugin; everything else is shared.
struct FilterKind {
    const char *name;         // function name, used in error messages as "vfi.<name>: "
    const char *method;       // create_engine's method: the registry models this filter runs
    const char *engineModule; // Python module with create_engine()
    const char *defaultModel;
    const char *args;         // the function's argument string
};

// Rate and model arguments, first in every filter (positional callers rely on this order).
#define VFI_LEADING_ARGS                                                                                           \
    "clip:vnode;multi:int:opt;factor_num:int:opt;factor_den:int:opt;fps_num:int:opt;fps_den:int:opt;"            \
    "model:data:opt;model_path:data:opt;"
// Scene change, device and tiling arguments, last in every filter.
#define VFI_TRAILING_ARGS                                                                                          \
    "sc:int:opt;sc_threshold:float:opt;device:data:opt;precision:data:opt;tile:int:opt;tile_overlap:int:opt;"

// RRIN has no flow-resolution scale and no ensemble mode: the engine gets scale=1 and ensemble=0.
const FilterKind kKinds[] = {
    {"RIFE", "rife", "vsrife.engine", "4.0", VFI_LEADING_ARGS "scale:float:opt;ensemble:int:opt;" VFI_TRAILING_ARGS},
    {"RRIN", "rrin", "vsrife.engine", "rrin", VFI_LEADING_ARGS VFI_TRAILING_ARGS},
};

// Mean absolute RGB difference above which frames count as a cut: bikes.mp4's fastest motion measures 0.082,
// its cuts 0.20 to 0.33.
constexpr double kDefaultSceneChangeThreshold = 0.12;

// scale=0: the engine picks the flow resolution from the frame size (vsrife.engine.auto_scale).
constexpr double kAutoScale = 0.0;
constexpr double kDefaultScale = 1.0;

// Smallest tile: below this, overlap and padding would be most of every pass.
constexpr int64_t kMinTile = 64;
// Context shared by neighbouring tiles when tile_overlap is not given (capped at tile/4 for small tiles).
constexpr int64_t kDefaultTileOverlap = 64;

struct ArgError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string fmtDouble(double d) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%g", d);
    return buf;
}

std::string fraction(int64_t num, int64_t den) {
    return std::to_string(num) + "/" + std::to_string(den);
}

// Owns one node reference.
class NodeRef {
public:
    NodeRef(const VSAPI *vsapi, VSNode *node) : vsapi_(vsapi), node_(node) {}
    ~NodeRef() {
        if (node_)
            vsapi_->freeNode(node_);
    }
    NodeRef(const NodeRef &) = delete;
    NodeRef &operator=(const NodeRef &) = delete;
    VSNode *get() const { return node_; }
    VSNode *release() {
        VSNode *n = node_;
        node_ = nullptr;
        return n;
    }
    void reset(VSNode *node) {
        if (node_)
            vsapi_->freeNode(node_);
        node_ = node;
    }

private:
    const VSAPI *vsapi_;
    VSNode *node_;
};

///////////////////////////////////////////////////////////////////////////////////////////////////
// Arguments

bool getInt(const VSMap *in, const char *key, int64_t *value, const VSAPI *vsapi) {
    int err = 0;
    int64_t v = vsapi->mapGetInt(in, key, 0, &err);
    if (err)
        return false;
    *value = v;
    return true;
}

std::string getString(const VSMap *in, const char *key, const char *fallback, bool *present, const VSAPI *vsapi) {
    int err = 0;
    const char *data = vsapi->mapGetData(in, key, 0, &err);
    if (present)
        *present = !err;
    if (err)
        return fallback;
    int size = vsapi->mapGetDataSize(in, key, 0, &err);
    return std::string(data, static_cast<size_t>(size));
}

// Reads multi / factor_num+factor_den / fps_num+fps_den (exactly one way; multi=2 when none is given).
Rate parseRate(const VSMap *in, const VSVideoInfo *vi, const VSAPI *vsapi) {
    int64_t multi = 0, fnum = 0, fden = 0, pnum = 0, pden = 0;
    bool hasMulti = getInt(in, "multi", &multi, vsapi);
    bool hasFnum = getInt(in, "factor_num", &fnum, vsapi);
    bool hasFden = getInt(in, "factor_den", &fden, vsapi);
    bool hasPnum = getInt(in, "fps_num", &pnum, vsapi);
    bool hasPden = getInt(in, "fps_den", &pden, vsapi);

    int ways = int(hasMulti) + int(hasFnum || hasFden) + int(hasPnum || hasPden);
    if (ways > 1)
        throw ArgError("give only one of multi, factor_num/factor_den or fps_num/fps_den to set the output rate");

    i128 num = 2, den = 1;
    if (hasFnum || hasFden) {
        if (!hasFnum || !hasFden)
            throw ArgError("factor_num and factor_den must be given together");
        if (fnum <= 0 || fden <= 0)
            throw ArgError("factor_num and factor_den must be positive (got " + fraction(fnum, fden) + ")");
        if (fnum <= fden)
            throw ArgError("factor_num/factor_den must be greater than 1 (got " + fraction(fnum, fden) + ")");
        num = fnum;
        den = fden;
    } else if (hasPnum || hasPden) {
        if (!hasPnum || !hasPden)
            throw ArgError("fps_num and fps_den must be given together");
        if (pnum <= 0 || pden <= 0)
            throw ArgError("fps_num and fps_den must be positive (got " + fraction(pnum, pden) + ")");
        if (vi->fpsNum <= 0 || vi->fpsDen <= 0)
            throw ArgError("fps_num/fps_den need a clip with a constant frame rate; this clip's frame rate is "
                           "variable (use multi or factor_num/factor_den instead)");
        num = static_cast<i128>(pnum) * vi->fpsDen;
        den = static_cast<i128>(pden) * vi->fpsNum;
        if (num <= den)
            throw ArgError("the target frame rate " + fraction(pnum, pden) + " must be higher than the clip's " +
                           fraction(vi->fpsNum, vi->fpsDen));
    } else if (hasMulti) {
        if (multi < 2)
            throw ArgError("multi must be an integer >= 2 (got " + std::to_string(multi) + ")");
        num = multi;
        den = 1;
    }

    Rate rate;
    if (!reduceInto(num, den, INT_MAX, &rate.num, &rate.den))
        throw ArgError("the rate factor is too large or too finely divided (its reduced numerator and denominator "
                       "must each be at most 2147483647)");
    return rate;
}

struct Settings {
    Rate rate;
    EngineArgs engine;
    bool sc = false;
};

// tile: 0 (automatic) or >= kMinTile; tile_overlap: >= 0 and < tile/2.
void parseTiling(const VSMap *in, EngineArgs *engine, const VSAPI *vsapi) {
    int64_t tile = 0, overlap = 0;
    getInt(in, "tile", &tile, vsapi);
    if (tile != 0 && tile < kMinTile)
        throw ArgError("tile must be 0 (automatic) or a tile size of at least " + std::to_string(kMinTile) +
                       " pixels (got " + std::to_string(tile) + ")");
    if (!getInt(in, "tile_overlap", &overlap, vsapi))
        overlap = tile > 0 ? std::min(kDefaultTileOverlap, tile / 4) : kDefaultTileOverlap;
    if (overlap < 0)
        throw ArgError("tile_overlap must be >= 0 (got " + std::to_string(overlap) + ")");
    if (tile > 0 && overlap > (tile - 1) / 2) // overlap < tile/2, without overflowing 2*overlap
        throw ArgError("tile_overlap must be less than tile/2 (got tile_overlap=" + std::to_string(overlap) +
                       " with tile=" + std::to_string(tile) + ")");
    engine->tile = tile;
    engine->tileOverlap = overlap;
}

Settings parseSettings(const VSMap *in, const VSVideoInfo *vi, const FilterKind &kind, const VSAPI *vsapi) {
    Settings s;
    s.rate = parseRate(in, vi, vsapi);

    int err = 0;
    double scale = vsapi->mapGetFloat(in, "scale", 0, &err);
    if (err)
        scale = kDefaultScale;
    if (!(scale == kAutoScale || scale == 0.25 || scale == 0.5 || scale == 1.0 || scale == 2.0 || scale == 4.0))
        throw ArgError("scale must be 0 (automatic, from the frame size) or one of 0.25, 0.5, 1, 2, 4 (got " +
                       fmtDouble(scale) + ")");

    int64_t ensemble = 0, sc = 0;
    getInt(in, "ensemble", &ensemble, vsapi);
    if (ensemble != 0 && ensemble != 1)
        throw ArgError("ensemble must be 0 or 1 (got " + std::to_string(ensemble) + ")");
    getInt(in, "sc", &sc, vsapi);
    if (sc != 0 && sc != 1)
        throw ArgError("sc must be 0 or 1 (got " + std::to_string(sc) + ")");

    double threshold = vsapi->mapGetFloat(in, "sc_threshold", 0, &err);
    if (err)
        threshold = kDefaultSceneChangeThreshold;
    if (!(threshold > 0.0 && threshold <= 1.0))
        throw ArgError("sc_threshold must be > 0 and <= 1 (got " + fmtDouble(threshold) +
                       "); it is the mean absolute difference of the two frames' RGB samples (0..1), measured at "
                       "quarter resolution");

    parseTiling(in, &s.engine, vsapi);

    s.sc = sc != 0;
    s.engine.method = kind.method;
    s.engine.model = getString(in, "model", kind.defaultModel, nullptr, vsapi);
    s.engine.modelPath = getString(in, "model_path", "", &s.engine.hasModelPath, vsapi);
    s.engine.scale = scale;
    s.engine.ensemble = ensemble != 0;
    s.engine.device = getString(in, "device", "auto", nullptr, vsapi);
    s.engine.precision = getString(in, "precision", "auto", nullptr, vsapi);
    s.engine.width = vi->width;
    s.engine.height = vi->height;
    s.engine.scThreshold = threshold;
    return s;
}

void checkClip(const VSVideoInfo *vi, const VSAPI *vsapi) {
    if (vi->format.colorFamily == cfUndefined)
        throw ArgError("the clip must have a constant format; this clip's format varies from frame to frame "
                       "(convert it to one format first, for example with resize)");
    if (vi->width <= 0 || vi->height <= 0)
        throw ArgError("the clip must have a constant frame size; this clip's size varies from frame to frame "
                       "(resize it to one size first)");
    const VSVideoFormat &f = vi->format;
    if (f.colorFamily != cfRGB && f.colorFamily != cfYUV && f.colorFamily != cfGray)
        throw ArgError("unsupported color family " + std::to_string(f.colorFamily) +
                       "; allowed are RGB, YUV and GRAY");
    bool intOk = f.sampleType == stInteger && f.bitsPerSample >= 8 && f.bitsPerSample <= 16;
    bool floatOk = f.sampleType == stFloat && (f.bitsPerSample == 16 || f.bitsPerSample == 32);
    if (!intOk && !floatOk) {
        char name[32] = {};
        vsapi->getVideoFormatName(&f, name);
        throw ArgError(std::string("unsupported sample format (") + name +
                       "); allowed are 8-16 bit integer, half (16 bit) and single (32 bit) float samples");
    }
    if (vi->numFrames < 2)
        throw ArgError("the clip needs at least 2 frames to interpolate between; it has " +
                       std::to_string(vi->numFrames));
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// Frame properties

const char *const kSceneChangeNext = "_SceneChangeNext";
const char *const kSceneChangePrev = "_SceneChangePrev";
// Set by the internal RGBS filter on a frame repeated at a scene change, so that the selector returns the
// original source frame instead of its round trip through RGB.
const char *const kRepeatMarker = "VfiSceneCutRepeat";
// The colour description an interpolated frame takes over from its source frame a.
const char *const kColourProps[] = {"_Matrix", "_Primaries", "_Transfer", "_Range", "_ColorRange", "_ChromaLocation"};

bool intPropNonzero(const VSMap *props, const char *key, const VSAPI *vsapi) {
    int err = 0;
    int64_t v = vsapi->mapGetInt(props, key, 0, &err);
    return !err && v != 0;
}

bool hasKey(const VSMap *props, const char *key, const VSAPI *vsapi) {
    return vsapi->mapNumElements(props, key) >= 0;
}

// Output duration = the source frame's duration (its props, else 1/fps of the clip) * den/num.
void setDuration(VSMap *props, const Rate &rate, const VSVideoInfo &src, const VSAPI *vsapi) {
    int e1 = 0, e2 = 0;
    int64_t dnum = vsapi->mapGetInt(props, "_DurationNum", 0, &e1);
    int64_t dden = vsapi->mapGetInt(props, "_DurationDen", 0, &e2);
    if (e1 || e2 || dnum <= 0 || dden <= 0) {
        dnum = src.fpsDen;
        dden = src.fpsNum;
    }
    int64_t onum = 0, oden = 0;
    if (dnum > 0 && dden > 0 &&
        reduceInto(static_cast<i128>(dnum) * rate.den, static_cast<i128>(dden) * rate.num, INT64_MAX, &onum, &oden)) {
        vsapi->mapSetInt(props, "_DurationNum", onum, maReplace);
        vsapi->mapSetInt(props, "_DurationDen", oden, maReplace);
    } else {
        vsapi->mapDeleteKey(props, "_DurationNum");
        vsapi->mapDeleteKey(props, "_DurationDen");
    }
}

// A copy of a source frame (same planes, same props) with only the duration updated. Consumes f.
const VSFrame *copyWithDuration(const VSFrame *f, const Rate &rate, const VSVideoInfo &src, VSCore *core,
                                const VSAPI *vsapi) {
    VSFrame *dst = vsapi->copyFrame(f, core);
    vsapi->freeFrame(f);
    setDuration(vsapi->getFramePropertiesRW(dst), rate, src, vsapi);
    return dst;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// The interpolating filter: works on RGBS or RGBH frames and calls the engine.

struct InterpData {
    std::string prefix; // "vfi.RIFE: "
    VSNode *node = nullptr;
    VSVideoInfo srcVi{};
    Rate rate;
    bool sc = false;
    bool markRepeats = false; // a selector downstream swaps repeated frames for the originals
    Engine *engine = nullptr;
};

// PyTorch's CPU buffers come and go with every frame; glibc keeps the freed pages in fragmented malloc arenas, and a
// long render grows by tens of MB per thousand frames. Every kTrimInterval inferences, hand free pages back to the
// system (benchmarks/soak.py measures the effect).
constexpr unsigned kTrimInterval = 64;
std::atomic<unsigned> inferencesSinceTrim{0};

void releaseFreedMemory() {
#if defined(__GLIBC__)
    if (inferencesSinceTrim.fetch_add(1, std::memory_order_relaxed) + 1 >= kTrimInterval) {
        inferencesSinceTrim.store(0, std::memory_order_relaxed);
        malloc_trim(0);
    }
#endif
}

// Frame a again at a scene change: the source frame itself, marked when a selector downstream must swap it.
const VSFrame *sceneCutRepeat(const InterpData *d, const VSFrame *f0, VSCore *core, const VSAPI *vsapi) {
    const VSFrame *copy = copyWithDuration(f0, d->rate, d->srcVi, core, vsapi);
    if (!d->markRepeats)
        return copy;
    VSFrame *marked = vsapi->copyFrame(copy, core);
    vsapi->freeFrame(copy);
    vsapi->mapSetInt(vsapi->getFramePropertiesRW(marked), kRepeatMarker, 1, maReplace);
    return marked;
}

const VSFrame *VS_CC interpGetFrame(int n, int activationReason, void *instanceData, void **, VSFrameContext *ctx,
                                     VSCore *core, const VSAPI *vsapi) {
    InterpData *d = static_cast<InterpData *>(instanceData);
    Position p = mapFrame(n, d->rate, d->srcVi.numFrames);

    if (activationReason == arInitial) {
        vsapi->requestFrameFilter(p.a, d->node, ctx);
        if (p.inference)
            vsapi->requestFrameFilter(p.a + 1, d->node, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady)
        return nullptr;

    const VSFrame *f0 = vsapi->getFrameFilter(p.a, d->node, ctx);
    if (!p.inference)
        return copyWithDuration(f0, d->rate, d->srcVi, core, vsapi);

    const VSFrame *f1 = vsapi->getFrameFilter(p.a + 1, d->node, ctx);
    bool detect = false;
    if (d->sc) {
        const VSMap *p0 = vsapi->getFramePropertiesRO(f0);
        const VSMap *p1 = vsapi->getFramePropertiesRO(f1);
        if (intPropNonzero(p0, kSceneChangeNext, vsapi) || intPropNonzero(p1, kSceneChangePrev, vsapi)) {
            vsapi->freeFrame(f1);
            return sceneCutRepeat(d, f0, core, vsapi);
        }
        detect = !hasKey(p0, kSceneChangeNext, vsapi) && !hasKey(p0, kSceneChangePrev, vsapi) &&
                 !hasKey(p1, kSceneChangeNext, vsapi) && !hasKey(p1, kSceneChangePrev, vsapi);
    }

    VSFrame *dst = vsapi->newVideoFrame(&d->srcVi.format, d->srcVi.width, d->srcVi.height, f0, core);
    VSMap *props = vsapi->getFramePropertiesRW(dst);
    vsapi->mapDeleteKey(props, kSceneChangeNext);
    vsapi->mapDeleteKey(props, kSceneChangePrev);
    setDuration(props, d->rate, d->srcVi, vsapi);

    Plane in0[3], in1[3], out[3];
    for (int i = 0; i < 3; i++) {
        int h = vsapi->getFrameHeight(dst, i);
        in0[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f0, i)), vsapi->getStride(f0, i), h};
        in1[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f1, i)), vsapi->getStride(f1, i), h};
        out[i] = Plane{vsapi->getWritePtr(dst, i), vsapi->getStride(dst, i), h};
    }

    std::string err;
    InterpResult result = interpolate(d->engine, in0, in1, out, p.t, detect, p.a, p.a + 1, err);
    releaseFreedMemory();
    switch (result) {
    case InterpResult::Interpolated:
        vsapi->freeFrame(f0);
        vsapi->freeFrame(f1);
        return dst;
    case InterpResult::SceneCut:
        vsapi->freeFrame(dst);
        vsapi->freeFrame(f1);
        return sceneCutRepeat(d, f0, core, vsapi);
    case InterpResult::BufferKept:
        // Python may still read or write these frames: leaking them is the only safe choice.
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    case InterpResult::Error:
    default:
        vsapi->freeFrame(dst);
        vsapi->freeFrame(f0);
        vsapi->freeFrame(f1);
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
}

void VS_CC interpFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    InterpData *d = static_cast<InterpData *>(instanceData);
    vsapi->freeNode(d->node);
    destroyEngine(d->engine);
    delete d;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// The selector: original source frames where no inference is needed or a scene change repeats one, the
// back-converted result elsewhere, with the colour properties of its source frame a.

struct SelectData {
    VSNode *src = nullptr;
    VSNode *interpolated = nullptr; // same format and length as the output
    VSVideoInfo srcVi{};
    Rate rate;
};

const VSFrame *VS_CC selectGetFrame(int n, int activationReason, void *instanceData, void **, VSFrameContext *ctx,
                                     VSCore *core, const VSAPI *vsapi) {
    SelectData *d = static_cast<SelectData *>(instanceData);
    Position p = mapFrame(n, d->rate, d->srcVi.numFrames);
    if (activationReason == arInitial) {
        // Frame a is also an input of the interpolation, so asking for it here costs a cache lookup.
        vsapi->requestFrameFilter(p.a, d->src, ctx);
        if (p.inference)
            vsapi->requestFrameFilter(n, d->interpolated, ctx);
    } else if (activationReason == arAllFramesReady) {
        const VSFrame *source = vsapi->getFrameFilter(p.a, d->src, ctx);
        if (!p.inference)
            return copyWithDuration(source, d->rate, d->srcVi, core, vsapi);
        const VSFrame *result = vsapi->getFrameFilter(n, d->interpolated, ctx);
        if (intPropNonzero(vsapi->getFramePropertiesRO(result), kRepeatMarker, vsapi)) {
            vsapi->freeFrame(result);
            return copyWithDuration(source, d->rate, d->srcVi, core, vsapi);
        }
        VSFrame *dst = vsapi->copyFrame(result, core);
        vsapi->freeFrame(result);
        const VSMap *from = vsapi->getFramePropertiesRO(source);
        VSMap *to = vsapi->getFramePropertiesRW(dst);
        for (const char *key : kColourProps) {
            int err = 0;
            int64_t value = vsapi->mapGetInt(from, key, 0, &err);
            if (err)
                vsapi->mapDeleteKey(to, key);
            else
                vsapi->mapSetInt(to, key, value, maReplace);
        }
        vsapi->freeFrame(source);
        return dst;
    }
    return nullptr;
}

void VS_CC selectFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    SelectData *d = static_cast<SelectData *>(instanceData);
    vsapi->freeNode(d->src);
    vsapi->freeNode(d->interpolated);
    delete d;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// Conversion to and from RGBS with the core's resize

struct Colorimetry {
    bool hasMatrix = false;
    int64_t matrix = 1;
    bool fullRange = false;
    bool hasChromaloc = false;
    int64_t chromaloc = 0;
};

// Reads _Matrix, _Range (1 = full, 0 = limited) or the older _ColorRange (0 = full, 1 = limited) and
// _ChromaLocation from a source frame. Defaults: BT.709 limited for YUV and GRAY; integer RGB is full range.
Colorimetry readColorimetry(const VSFrame *frame, const VSVideoFormat &format, const VSAPI *vsapi) {
    Colorimetry c;
    if (format.colorFamily == cfRGB) {
        c.fullRange = true;
        return c;
    }
    const VSMap *props = vsapi->getFramePropertiesRO(frame);
    int err = 0;
    int64_t v = vsapi->mapGetInt(props, "_Matrix", 0, &err);
    c.hasMatrix = true;
    c.matrix = (!err && v != 2) ? v : 1; // 2 = unspecified
    // Grey becomes R = G = B, which any matrix maps back to the same Y: BT.709 then, whatever _Matrix says.
    if (format.colorFamily == cfGray)
        c.matrix = 1;
    v = vsapi->mapGetInt(props, "_Range", 0, &err);
    if (!err) {
        c.fullRange = v == 1;
    } else {
        v = vsapi->mapGetInt(props, "_ColorRange", 0, &err);
        c.fullRange = !err && v == 0;
    }
    if (format.colorFamily == cfYUV) {
        v = vsapi->mapGetInt(props, "_ChromaLocation", 0, &err);
        if (!err) {
            c.hasChromaloc = true;
            c.chromaloc = v;
        }
    }
    return c;
}

std::string describeColorimetry(const Colorimetry &c) {
    std::string text = "_Matrix=" + std::to_string(c.matrix) + (c.fullRange ? ", full range" : ", limited range");
    if (c.hasChromaloc)
        text += ", _ChromaLocation=" + std::to_string(c.chromaloc);
    return text;
}

struct FirstFrame {
    const VSAPI *vsapi;
    VSNode *node;
    const VSFrame *frame;
    char error[1024];
};

// Source frame 0, fetched with the GIL released: an upstream filter written in Python needs it.
const VSFrame *fetchFirstFrame(VSNode *node, std::string &err, const VSAPI *vsapi) {
    FirstFrame req{vsapi, node, nullptr, {}};
    withoutGIL(
        [](void *arg) {
            FirstFrame *r = static_cast<FirstFrame *>(arg);
            r->frame = r->vsapi->getFrame(0, r->node, r->error, sizeof(r->error));
        },
        &req);
    if (!req.frame)
        err = req.error;
    return req.frame;
}

// Throws unless frame 0 of a converted node can be made: what the conversion does with frame 0's properties.
void requireConversion(VSNode *converted, const char *what, const Colorimetry &color, const VSAPI *vsapi) {
    std::string err;
    const VSFrame *frame = fetchFirstFrame(converted, err, vsapi);
    if (!frame)
        throw ArgError(std::string("cannot ") + what + " with the colour properties of its frame 0 (" +
                       describeColorimetry(color) + "): " + err +
                       "; set valid ones upstream, e.g. std.SetFrameProps(clip, _Matrix=1)");
    vsapi->freeFrame(frame);
}

// resize.Bicubic(clip, format=formatId, <colorimetry>). toRGB: c describes the input (matrix_in, ...);
// otherwise c describes the output (matrix, ...). Returns a new node or throws.
VSNode *resizeClip(VSNode *clip, uint32_t formatId, const Colorimetry &c, bool toRGB, VSCore *core,
                   const VSAPI *vsapi) {
    VSPlugin *resize = vsapi->getPluginByID("com.vapoursynth.resize", core);
    if (!resize)
        throw ArgError("the core's resize plugin (com.vapoursynth.resize) is missing; it is needed to convert "
                       "non-RGBS/RGBH clips");
    VSMap *args = vsapi->createMap();
    vsapi->mapSetNode(args, "clip", clip, maReplace);
    vsapi->mapSetInt(args, "format", formatId, maReplace);
    const char *range = c.fullRange ? "full" : "limited";
    if (c.hasMatrix)
        vsapi->mapSetInt(args, toRGB ? "matrix_in" : "matrix", c.matrix, maReplace);
    vsapi->mapSetData(args, toRGB ? "range_in_s" : "range_s", range, -1, dtUtf8, maReplace);
    if (c.hasChromaloc)
        vsapi->mapSetInt(args, toRGB ? "chromaloc_in" : "chromaloc", c.chromaloc, maReplace);
    VSMap *ret = vsapi->invoke(resize, "Bicubic", args);
    vsapi->freeMap(args);
    const char *error = vsapi->mapGetError(ret);
    if (error) {
        std::string msg = std::string("could not convert the clip ") + (toRGB ? "to RGBS" : "back from RGBS") +
                          " with resize: " + error;
        vsapi->freeMap(ret);
        throw ArgError(msg);
    }
    VSNode *node = vsapi->mapGetNode(ret, "clip", 0, nullptr);
    vsapi->freeMap(ret);
    return node;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// Create

void createInterpolation(const VSMap *in, VSMap *out, const FilterKind &kind, VSCore *core, const VSAPI *vsapi) {
    const std::string prefix = std::string("vfi.") + kind.name + ": ";
    NodeRef src(vsapi, vsapi->mapGetNode(in, "clip", 0, nullptr));
    const VSVideoInfo *vi = vsapi->getVideoInfo(src.get());
    InterpData *data = nullptr;
    try {
        checkClip(vi, vsapi);
        Settings s = parseSettings(in, vi, kind, vsapi);

        // Output VideoInfo: same format and size, length floor(n*num/den), fps*num/den (variable stays variable).
        VSVideoInfo outVi = *vi;
        int64_t length = outputLength(vi->numFrames, s.rate);
        if (length < 0)
            throw ArgError("the output would have more than 2147483647 frames; use a smaller rate factor");
        outVi.numFrames = static_cast<int>(length);
        if (vi->fpsNum > 0 && vi->fpsDen > 0 &&
            !reduceInto(static_cast<i128>(vi->fpsNum) * s.rate.num, static_cast<i128>(vi->fpsDen) * s.rate.den,
                        INT64_MAX, &outVi.fpsNum, &outVi.fpsDen))
            throw ArgError("the output frame rate does not fit in 64-bit integers; use a smaller rate factor");

        if (!pythonAvailable())
            throw ArgError("needs a Python interpreter in the process; run it from python or vspipe");

        const VSVideoFormat &f = vi->format;
        bool native = f.colorFamily == cfRGB && f.sampleType == stFloat;
        s.engine.sampleType = (native && f.bitsPerSample == 16) ? "float16" : "float32";

        Colorimetry color;
        NodeRef rgb(vsapi, nullptr);
        if (native) {
            rgb.reset(vsapi->addNodeRef(src.get()));
        } else {
            std::string err;
            const VSFrame *first = fetchFirstFrame(src.get(), err, vsapi);
            if (!first)
                throw ArgError("could not read frame 0 for its color properties: " + err);
            color = readColorimetry(first, f, vsapi);
            vsapi->freeFrame(first);
            uint32_t rgbsId = vsapi->queryVideoFormatID(cfRGB, stFloat, 32, 0, 0, core);
            rgb.reset(resizeClip(src.get(), rgbsId, color, true, core, vsapi));
            // Bad colour properties (say _Matrix=0 on YUV) fail here, at creation, not at the first frame request.
            requireConversion(rgb.get(), "convert the clip to RGB", color, vsapi);
        }

        std::string err;
        Engine *engine = createEngine(kind.engineModule, s.engine, err);
        if (!engine)
            throw ArgError(err);

        data = new InterpData;
        data->prefix = prefix;
        data->srcVi = *vsapi->getVideoInfo(rgb.get());
        data->rate = s.rate;
        data->sc = s.sc;
        data->markRepeats = !native;
        data->engine = engine;
        data->node = rgb.release();

        VSVideoInfo interpVi = outVi;
        interpVi.format = data->srcVi.format;
        VSFilterDependency deps[] = {{data->node, rpGeneral}};
        if (native) {
            InterpData *d = data;
            data = nullptr; // owned by the filter from here on (freed by interpFree)
            vsapi->createVideoFilter(out, kind.name, &interpVi, interpGetFrame, interpFree, fmParallel, deps, 1, d,
                                     core);
            return;
        }

        std::string internalName = std::string(kind.name) + "_interpolate";
        InterpData *d = data;
        data = nullptr;
        NodeRef interp(vsapi, vsapi->createVideoFilter2(internalName.c_str(), &interpVi, interpGetFrame, interpFree,
                                                        fmParallel, deps, 1, d, core));
        if (!interp.get())
            throw ArgError("could not create the internal interpolation filter");

        uint32_t srcId = vsapi->queryVideoFormatID(f.colorFamily, f.sampleType, f.bitsPerSample, f.subSamplingW,
                                                   f.subSamplingH, core);
        NodeRef back(vsapi, resizeClip(interp.get(), srcId, color, false, core, vsapi));
        // Output frame 0 is source frame 0 (no inference): it proves the way back works for these properties.
        requireConversion(back.get(), "convert the result back from RGB", color, vsapi);

        SelectData *sel = new SelectData;
        sel->srcVi = *vi;
        sel->rate = s.rate;
        sel->src = src.release();
        sel->interpolated = back.release();
        VSFilterDependency selDeps[] = {{sel->src, rpGeneral}, {sel->interpolated, rpGeneral}};
        vsapi->createVideoFilter(out, kind.name, &outVi, selectGetFrame, selectFree, fmParallel, selDeps, 2, sel,
                                 core);
    } catch (const std::exception &e) {
        if (data) {
            vsapi->freeNode(data->node);
            destroyEngine(data->engine);
            delete data;
        }
        vsapi->mapSetError(out, (prefix + e.what()).c_str());
    }
}

void VS_CC filterCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    createInterpolation(in, out, *static_cast<const FilterKind *>(userData), core, vsapi);
}

} // namespace
} // namespace vfi

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin("com.vapoursynth-vfi.vfi", "vfi", "Video frame interpolation",
                         VS_MAKE_VERSION(0, 2), VAPOURSYNTH_API_VERSION, 0, plugin);
    for (const vfi::FilterKind &kind : vfi::kKinds)
        vspapi->registerFunction(kind.name, kind.args, "clip:vnode;", vfi::filterCreate,
                                 const_cast<vfi::FilterKind *>(&kind), plugin);
}
