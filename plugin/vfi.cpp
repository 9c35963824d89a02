// vfi: VapourSynth API4 plugin for video frame interpolation.
//
// core.vfi.RIFE and core.vfi.RRIN interpolate; core.vfi.Rate answers the rate arithmetic alone. Their parameters
// (names, types, defaults, allowed values, messages) come from parameters.h, which `python -m vsrife.codegen`
// writes from the table in vsrife/parameters.py; README.md's parameter tables come from the same table.
//
// Both filters are one createInterpolation and one getFrame; the table's Function row holds what differs.
//
// The plugin owns the argument checks, the output VideoInfo, the mapping output frame -> (source a, a+1, t) (with
// dedup: (last drawing a, next drawing b, t), found by staged lazy requests), the lazy frame requests and the frame
// properties. The pixels come from a Python engine (vsrife.engine, see
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
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <VSHelper4.h>
#include <VapourSynth4.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "parameters.h"
#include "pybridge.h"
#include "rate.h"

namespace vfi {
namespace {

// The Python module whose create_engine() builds a filter's engine.
constexpr const char *kEngineModule = "vsrife.engine";

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

bool admits(const params::Allowed &allowed, double v) {
    if (!allowed.range)
        return v == allowed.value;
    if (allowed.hasLow && !(allowed.lowOpen ? v > allowed.low : v >= allowed.low))
        return false;
    return !allowed.hasHigh || (allowed.highOpen ? v < allowed.high : v <= allowed.high); // NaN fails every test
}

// The values of one call, read with the function's parameter table: given or default. check() refuses a value the
// table does not allow, with the table's words: "<name> must be ... (got <value>)[; <note>]".
class Arguments {
public:
    Arguments(const VSMap *in, const params::Function &function, const VSAPI *vsapi) {
        for (int i = 0; i < function.count; i++) {
            const params::Parameter &spec = function.parameters[i];
            Value value{&spec, false, static_cast<int64_t>(spec.number), spec.number, spec.text, false};
            int err = 0;
            switch (spec.type) {
            case params::Type::Int: {
                int64_t v = vsapi->mapGetInt(in, spec.name, 0, &err);
                if (!err)
                    value.integer = v;
                break;
            }
            case params::Type::Float: {
                double v = vsapi->mapGetFloat(in, spec.name, 0, &err);
                if (!err)
                    value.real = v;
                break;
            }
            case params::Type::Data: {
                const char *data = vsapi->mapGetData(in, spec.name, 0, &err);
                if (!err)
                    value.text.assign(data, static_cast<size_t>(vsapi->mapGetDataSize(in, spec.name, 0, &err)));
                break;
            }
            case params::Type::Clip: // a node: its implementation takes it from the map
                err = vsapi->mapNumElements(in, spec.name) <= 0;
                break;
            }
            value.given = !err;
            values_.push_back(value);
        }
    }

    bool given(const char *name) const { return find(name).given; }
    int64_t integer(const char *name) const { return find(name).integer; }
    double real(const char *name) const { return find(name).real; }
    const std::string &text(const char *name) const { return find(name).text; }
    bool has(const char *name) const {
        return std::any_of(values_.begin(), values_.end(),
                           [name](const Value &v) { return std::strcmp(v.spec->name, name) == 0; });
    }

    // Throws unless the value (given or default) is one the table allows.
    void check(const char *name) {
        Value &value = values_[index(name)];
        value.checked = true;
        const params::Parameter &spec = *value.spec;
        if (!spec.allowed || (!value.given && !spec.hasDefault))
            return;
        bool isInt = spec.type == params::Type::Int;
        double v = isInt ? static_cast<double>(value.integer) : value.real;
        for (int i = 0; i < spec.allowedCount; i++)
            if (admits(spec.allowed[i], v))
                return;
        std::string got = isInt ? std::to_string(value.integer) : fmtDouble(value.real);
        throw ArgError(std::string(spec.name) + " " + spec.rule + " (got " + got + ")" +
                       (spec.note[0] ? std::string("; ") + spec.note : std::string()));
    }

    // check() for every parameter not checked yet, in the table's order.
    void checkRemaining() {
        for (Value &value : values_)
            if (!value.checked)
                check(value.spec->name);
    }

    // create_engine's keyword arguments: every engine parameter, the table's default where this function has none.
    std::vector<EngineArg> engineArgs() const {
        std::vector<EngineArg> args;
        for (const params::Parameter &spec : params::kEngineParameters) {
            const bool own = has(spec.name);
            const Value fallback{&spec, false, static_cast<int64_t>(spec.number), spec.number, spec.text, true};
            const Value &value = own ? find(spec.name) : fallback;
            EngineArg arg{spec.name, EngineArg::Kind::None, value.integer, value.real, value.text};
            if (value.given || spec.hasDefault) {
                switch (spec.type) {
                case params::Type::Int:
                    arg.kind = EngineArg::Kind::Int;
                    break;
                case params::Type::Float:
                    arg.kind = EngineArg::Kind::Float;
                    break;
                case params::Type::Data:
                    arg.kind = EngineArg::Kind::Text;
                    break;
                case params::Type::Clip:
                    throw ArgError(std::string("internal error: the clip ") + spec.name + " cannot go to the engine");
                }
            }
            args.push_back(arg);
        }
        return args;
    }

private:
    struct Value {
        const params::Parameter *spec;
        bool given;
        int64_t integer;
        double real;
        std::string text;
        bool checked;
    };

    size_t index(const char *name) const {
        for (size_t i = 0; i < values_.size(); i++)
            if (std::strcmp(values_[i].spec->name, name) == 0)
                return i;
        throw ArgError(std::string("internal error: no parameter ") + name + " in this function's table");
    }

    const Value &find(const char *name) const { return values_[index(name)]; }

    std::vector<Value> values_;
};

// Reads multi / factor_num+factor_den / fps_num+fps_den (exactly one way; multi=2 when none is given).
Rate parseRate(Arguments &args, const VSVideoInfo *vi) {
    bool hasMulti = args.given("multi");
    bool hasFnum = args.given("factor_num"), hasFden = args.given("factor_den");
    bool hasPnum = args.given("fps_num"), hasPden = args.given("fps_den");
    int64_t fnum = args.integer("factor_num"), fden = args.integer("factor_den");
    int64_t pnum = args.integer("fps_num"), pden = args.integer("fps_den");

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
    } else {
        args.check("multi");
        num = args.integer("multi");
        den = 1;
    }

    Rate rate;
    if (!reduceInto(num, den, INT_MAX, &rate.num, &rate.den))
        throw ArgError("the rate factor is too large or too finely divided (its reduced numerator and denominator "
                       "must each be at most 2147483647)");
    return rate;
}

// The output clip's length and frame rate: floor(n*num/den) frames at fps*num/den (variable stays variable).
VSVideoInfo outputVideoInfo(const VSVideoInfo *vi, const Rate &rate) {
    VSVideoInfo outVi = *vi;
    int64_t length = outputLength(vi->numFrames, rate);
    if (length < 0)
        throw ArgError("the output would have more than 2147483647 frames; use a smaller rate factor");
    outVi.numFrames = static_cast<int>(length);
    if (vi->fpsNum > 0 && vi->fpsDen > 0 &&
        !reduceInto(static_cast<i128>(vi->fpsNum) * rate.num, static_cast<i128>(vi->fpsDen) * rate.den, INT64_MAX,
                    &outVi.fpsNum, &outVi.fpsDen))
        throw ArgError("the output frame rate does not fit in 64-bit integers; use a smaller rate factor");
    return outVi;
}

// tile_overlap, once the table's rules passed: less than tile/2 too; without tile_overlap, its default is capped at
// tile/4 for small tiles.
int64_t tileOverlap(const Arguments &args) {
    int64_t tile = args.integer("tile");
    int64_t overlap = args.integer("tile_overlap");
    if (!args.given("tile_overlap") && tile > 0)
        overlap = std::min(overlap, tile / 4);
    if (tile > 0 && overlap > (tile - 1) / 2) // overlap < tile/2, without overflowing 2*overlap
        throw ArgError("tile_overlap must be less than tile/2 (got tile_overlap=" + std::to_string(overlap) +
                       " with tile=" + std::to_string(tile) + ")");
    return overlap;
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

const char *maskSampleType(const VSVideoFormat &f) {
    if (f.sampleType == stFloat)
        return f.bitsPerSample == 16 ? "float16" : "float32";
    return f.bitsPerSample == 8 ? "uint8" : "uint16";
}

// mask: GRAY, integer 8-16 bit or float 16/32 bit, the clip's size, one frame or as many as the clip.
void checkMask(const VSVideoInfo *mask, const VSVideoInfo *vi, const VSAPI *vsapi) {
    const VSVideoFormat &f = mask->format;
    char name[32] = "variable";
    if (f.colorFamily != cfUndefined)
        vsapi->getVideoFormatName(&f, name);
    bool intOk = f.sampleType == stInteger && f.bitsPerSample >= 8 && f.bitsPerSample <= 16;
    bool floatOk = f.sampleType == stFloat && (f.bitsPerSample == 16 || f.bitsPerSample == 32);
    if (f.colorFamily != cfGray || (!intOk && !floatOk))
        throw ArgError(std::string("mask must be a GRAY clip of 8-16 bit integer or 16/32 bit float samples (got ") +
                       name + ")");
    if (mask->width != vi->width || mask->height != vi->height)
        throw ArgError("mask must have the clip's size " + std::to_string(vi->width) + "x" +
                       std::to_string(vi->height) + " (got " +
                       (mask->width > 0 ? std::to_string(mask->width) + "x" + std::to_string(mask->height)
                                        : std::string("a variable size")) +
                       ")");
    if (mask->numFrames != 1 && mask->numFrames != vi->numFrames)
        throw ArgError("mask must have 1 frame or as many as the clip (" + std::to_string(vi->numFrames) +
                       ") (got " + std::to_string(mask->numFrames) + ")");
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// Frame properties

const char *const kSceneChangeNext = "_SceneChangeNext";
const char *const kSceneChangePrev = "_SceneChangePrev";
// Set by the internal RGBS filter on a source frame it returns as it is (at a scene change, in a still, with dedup),
// to that frame's number, so that the selector returns the original source frame instead of its round trip through
// RGB.
const char *const kSourceMarker = "VfiSourceFrame";
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

// One engine per filter instance, shared by the interpolating filter and, with dedup, the difference filter.
using EnginePtr = std::shared_ptr<Engine>;

EnginePtr shareEngine(Engine *engine) {
    return EnginePtr(engine, destroyEngine);
}

// The difference filter's property: the engine's difference of a source frame from the frame before it.
const char *const kDifferenceProp = "VfiDedupDifference";

struct InterpData {
    std::string prefix; // "vfi.RIFE: "
    VSNode *node = nullptr; // the RGB source; with dedup, the difference filter over it
    VSVideoInfo srcVi{};
    Rate rate;
    bool sc = false;
    bool markRepeats = false; // a selector downstream swaps frames returned as-is for the originals
    bool dedup = false;
    double dedupThreshold = 0.0;
    int dedupMax = 0;
    VSNode *mask = nullptr; // GRAY, the source's size; nullptr: no mask
    int maskFrames = 0;
    EnginePtr engine;
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

// Source frame `number` returned as it is, marked when a selector downstream must swap it for the original.
const VSFrame *sourceAsIs(const InterpData *d, const VSFrame *frame, int number, VSCore *core, const VSAPI *vsapi) {
    VSFrame *copy = vsapi->copyFrame(frame, core);
    vsapi->freeFrame(frame);
    VSMap *props = vsapi->getFramePropertiesRW(copy);
    setDuration(props, d->rate, d->srcVi, vsapi);
    vsapi->mapDeleteKey(props, kDifferenceProp);
    if (d->markRepeats)
        vsapi->mapSetInt(props, kSourceMarker, number, maReplace);
    return copy;
}

// What an output frame is made of: the frame synthesized at t between source frames a and b, or frame a as it
// is.
struct Pair {
    int a = 0;
    int b = 0;
    double t = 0.0;
    bool inference = false;
};

int maskFrame(const InterpData *d, int a) {
    return d->maskFrames == 1 ? 0 : a;
}

void requestPair(const InterpData *d, const Pair &pair, VSFrameContext *ctx, const VSAPI *vsapi) {
    vsapi->requestFrameFilter(pair.a, d->node, ctx);
    if (!pair.inference)
        return;
    vsapi->requestFrameFilter(pair.b, d->node, ctx);
    if (d->mask)
        vsapi->requestFrameFilter(maskFrame(d, pair.a), d->mask, ctx);
}

// The output frame for a pair whose frames are ready (requested with requestPair).
const VSFrame *producePair(const InterpData *d, const Pair &pair, VSFrameContext *ctx, VSCore *core,
                           const VSAPI *vsapi) {
    const VSFrame *f0 = vsapi->getFrameFilter(pair.a, d->node, ctx);
    if (!pair.inference)
        return sourceAsIs(d, f0, pair.a, core, vsapi);

    const VSFrame *f1 = vsapi->getFrameFilter(pair.b, d->node, ctx);
    bool detect = false;
    if (d->sc) {
        const VSMap *p0 = vsapi->getFramePropertiesRO(f0);
        const VSMap *p1 = vsapi->getFramePropertiesRO(f1);
        if (intPropNonzero(p0, kSceneChangeNext, vsapi) || intPropNonzero(p1, kSceneChangePrev, vsapi)) {
            vsapi->freeFrame(f1);
            return sourceAsIs(d, f0, pair.a, core, vsapi);
        }
        detect = !hasKey(p0, kSceneChangeNext, vsapi) && !hasKey(p0, kSceneChangePrev, vsapi) &&
                 !hasKey(p1, kSceneChangeNext, vsapi) && !hasKey(p1, kSceneChangePrev, vsapi);
    }

    VSFrame *dst = vsapi->newVideoFrame(&d->srcVi.format, d->srcVi.width, d->srcVi.height, f0, core);
    VSMap *props = vsapi->getFramePropertiesRW(dst);
    vsapi->mapDeleteKey(props, kSceneChangeNext);
    vsapi->mapDeleteKey(props, kSceneChangePrev);
    vsapi->mapDeleteKey(props, kDifferenceProp);
    setDuration(props, d->rate, d->srcVi, vsapi);

    Plane in0[3], in1[3], out[3];
    for (int i = 0; i < 3; i++) {
        int h = vsapi->getFrameHeight(dst, i);
        in0[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f0, i)), vsapi->getStride(f0, i), h};
        in1[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f1, i)), vsapi->getStride(f1, i), h};
        out[i] = Plane{vsapi->getWritePtr(dst, i), vsapi->getStride(dst, i), h};
    }
    const VSFrame *maskFrameRef = nullptr;
    MaskPlane mask{};
    if (d->mask) {
        int number = maskFrame(d, pair.a);
        maskFrameRef = vsapi->getFrameFilter(number, d->mask, ctx);
        mask = MaskPlane{Plane{const_cast<uint8_t *>(vsapi->getReadPtr(maskFrameRef, 0)),
                               vsapi->getStride(maskFrameRef, 0), vsapi->getFrameHeight(maskFrameRef, 0)},
                         number};
    }

    std::string err;
    InterpResult result = interpolate(d->engine.get(), in0, in1, out, pair.t, detect, pair.a, pair.b,
                                      d->mask ? &mask : nullptr, err);
    releaseFreedMemory();
    if (result == InterpResult::BufferKept) {
        // Python may still read or write these frames: leaking them is the only safe choice.
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
    vsapi->freeFrame(f1);
    vsapi->freeFrame(maskFrameRef);
    switch (result) {
    case InterpResult::Interpolated:
        vsapi->freeFrame(f0);
        return dst;
    case InterpResult::SceneCut:
        vsapi->freeFrame(dst);
        return sourceAsIs(d, f0, pair.a, core, vsapi);
    case InterpResult::Error:
    default:
        vsapi->freeFrame(dst);
        vsapi->freeFrame(f0);
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
}

// dedup: what one output frame has learned between its request stages (kept in frameData). The source frames lo..hi
// were requested; held says, for each one read, whether it repeats the frame before it.
struct DedupWalk {
    int lo = 0;
    int hi = 0;
    std::map<int, bool> held;
    bool resolved = false; // pair is known and its frames were requested
    Pair pair;
};

// dedup: reads the frames that arrived and either resolves the pair (held frames placed on the timeline of distinct
// frames; a drawing shown for more than dedupMax frames is a still, left as it is) or asks for one more frame. Source
// frame s0 + r/num is the output's position. Returns true when walk->pair is resolved. At most dedupMax + 2 source
// frames are read: the hold, the next drawing, and the frame before the hold (which tells that it starts there).
bool walkDedup(const InterpData *d, DedupWalk *walk, int s0, int64_t r, VSFrameContext *ctx, const VSAPI *vsapi) {
    const int last = d->srcVi.numFrames - 1;
    for (int k : {walk->lo, walk->hi}) {
        if (walk->held.count(k))
            continue;
        const VSFrame *frame = vsapi->getFrameFilter(k, d->node, ctx);
        int err = 0;
        double value = vsapi->mapGetFloat(vsapi->getFramePropertiesRO(frame), kDifferenceProp, 0, &err);
        walk->held[k] = !err && value <= d->dedupThreshold;
        vsapi->freeFrame(frame);
    }
    const bool heldLo = walk->held[walk->lo], heldHi = walk->held[walk->hi];
    // repeats known so far; with its first frame the drawing is shown one frame more (a hold of 2 on twos)
    const int heldCount = walk->hi - walk->lo - 1 + int(heldLo) + int(heldHi);
    if (heldCount + 1 > d->dedupMax) {
        // a still: its frames as they are; only its last frame moves on to the next drawing, as without dedup
        bool moving = r != 0 && !walk->held[s0 + 1];
        walk->pair = moving ? Pair{s0, s0 + 1, static_cast<double>(r) / static_cast<double>(d->rate.num), true}
                            : Pair{s0, s0, 0.0, false};
        return true;
    }
    if (heldLo) {
        vsapi->requestFrameFilter(--walk->lo, d->node, ctx);
        return false;
    }
    if (heldHi && walk->hi < last) {
        vsapi->requestFrameFilter(++walk->hi, d->node, ctx);
        return false;
    }
    const int a = walk->lo, b = walk->hi;
    if (heldHi || (r == 0 && s0 == a)) { // the drawing is held to the end of the clip, or this is frame a itself
        walk->pair = Pair{s0, s0, 0.0, false};
        return true;
    }
    const double num = static_cast<double>(d->rate.num);
    const double t = (static_cast<double>(s0 - a) * num + static_cast<double>(r)) / (static_cast<double>(b - a) * num);
    walk->pair = Pair{a, b, t, true};
    return true;
}

const VSFrame *VS_CC interpGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                     VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi) {
    InterpData *d = static_cast<InterpData *>(instanceData);
    Position p = mapFrame(n, d->rate, d->srcVi.numFrames);
    DedupWalk *walk = static_cast<DedupWalk *>(*frameData);

    if (activationReason == arError) {
        delete walk;
        *frameData = nullptr;
        return nullptr;
    }
    if (!d->dedup || p.a >= d->srcVi.numFrames - 1) {
        Pair pair{p.a, p.a + 1, p.t, p.inference};
        if (activationReason == arInitial) {
            requestPair(d, pair, ctx, vsapi);
            return nullptr;
        }
        return activationReason == arAllFramesReady ? producePair(d, pair, ctx, core, vsapi) : nullptr;
    }

    if (activationReason == arInitial) {
        walk = new DedupWalk;
        walk->lo = p.a;
        walk->hi = p.a + 1;
        *frameData = walk;
        vsapi->requestFrameFilter(walk->lo, d->node, ctx);
        vsapi->requestFrameFilter(walk->hi, d->node, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady || !walk)
        return nullptr;
    if (!walk->resolved) {
        const int64_t r = static_cast<int64_t>(n) * d->rate.den % d->rate.num;
        if (!walkDedup(d, walk, p.a, r, ctx, vsapi))
            return nullptr;
        // the pair's frames again: they are cached, and frames of earlier stages need not be at hand in this one
        walk->resolved = true;
        requestPair(d, walk->pair, ctx, vsapi);
        return nullptr;
    }
    Pair pair = walk->pair;
    delete walk;
    *frameData = nullptr;
    return producePair(d, pair, ctx, core, vsapi);
}

void VS_CC interpFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    InterpData *d = static_cast<InterpData *>(instanceData);
    vsapi->freeNode(d->node);
    vsapi->freeNode(d->mask);
    delete d;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// The difference filter (dedup): source frame k unchanged, with the engine's difference from frame k-1 as
// kDifferenceProp (none on frame 0). The core's cache keeps it, so each pair is measured once.

struct DifferenceData {
    std::string prefix;
    VSNode *node = nullptr;
    EnginePtr engine;
};

const VSFrame *VS_CC differenceGetFrame(int n, int activationReason, void *instanceData, void **,
                                         VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi) {
    DifferenceData *d = static_cast<DifferenceData *>(instanceData);
    if (activationReason == arInitial) {
        if (n > 0)
            vsapi->requestFrameFilter(n - 1, d->node, ctx);
        vsapi->requestFrameFilter(n, d->node, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady)
        return nullptr;
    const VSFrame *f1 = vsapi->getFrameFilter(n, d->node, ctx);
    if (n == 0)
        return f1;
    const VSFrame *f0 = vsapi->getFrameFilter(n - 1, d->node, ctx);
    Plane in0[3], in1[3];
    for (int i = 0; i < 3; i++) {
        int h = vsapi->getFrameHeight(f1, i);
        in0[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f0, i)), vsapi->getStride(f0, i), h};
        in1[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f1, i)), vsapi->getStride(f1, i), h};
    }
    std::string err;
    double value = 0.0;
    InterpResult result = difference(d->engine.get(), in0, in1, n - 1, n, &value, err);
    if (result == InterpResult::BufferKept) {
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
    vsapi->freeFrame(f0);
    if (result != InterpResult::Interpolated) {
        vsapi->freeFrame(f1);
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
    VSFrame *dst = vsapi->copyFrame(f1, core);
    vsapi->freeFrame(f1);
    vsapi->mapSetFloat(vsapi->getFramePropertiesRW(dst), kDifferenceProp, value, maReplace);
    return dst;
}

void VS_CC differenceFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    DifferenceData *d = static_cast<DifferenceData *>(instanceData);
    vsapi->freeNode(d->node);
    delete d;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// The selector: original source frames where the interpolating filter returned one as it is (no inference needed, a
// scene change, a still), the back-converted result elsewhere, with the colour properties of its source frame a.

struct SelectData {
    VSNode *src = nullptr;
    VSNode *interpolated = nullptr; // same format and length as the output
    VSVideoInfo srcVi{};
    Rate rate;
    bool dedup = false; // which outputs are source frames depends on the frames: ask the interpolating filter
};

const VSFrame *VS_CC selectGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                     VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi) {
    SelectData *d = static_cast<SelectData *>(instanceData);
    Position p = mapFrame(n, d->rate, d->srcVi.numFrames);
    const bool askInterpolated = p.inference || d->dedup;
    if (activationReason == arInitial) {
        // Frame a is also an input of the interpolation, so asking for it here costs a cache lookup.
        vsapi->requestFrameFilter(p.a, d->src, ctx);
        if (askInterpolated)
            vsapi->requestFrameFilter(n, d->interpolated, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady)
        return nullptr;
    if (*frameData) { // second stage: the source frame the interpolating filter named
        int number = static_cast<int>(reinterpret_cast<intptr_t>(*frameData)) - 1;
        *frameData = nullptr;
        return copyWithDuration(vsapi->getFrameFilter(number, d->src, ctx), d->rate, d->srcVi, core, vsapi);
    }
    if (!askInterpolated)
        return copyWithDuration(vsapi->getFrameFilter(p.a, d->src, ctx), d->rate, d->srcVi, core, vsapi);
    const VSFrame *result = vsapi->getFrameFilter(n, d->interpolated, ctx);
    int err = 0;
    int64_t number = vsapi->mapGetInt(vsapi->getFramePropertiesRO(result), kSourceMarker, 0, &err);
    if (!err) {
        vsapi->freeFrame(result);
        if (number == p.a)
            return copyWithDuration(vsapi->getFrameFilter(p.a, d->src, ctx), d->rate, d->srcVi, core, vsapi);
        *frameData = reinterpret_cast<void *>(static_cast<intptr_t>(number) + 1);
        vsapi->requestFrameFilter(static_cast<int>(number), d->src, ctx);
        return nullptr;
    }
    const VSFrame *source = vsapi->getFrameFilter(p.a, d->src, ctx);
    VSFrame *dst = vsapi->copyFrame(result, core);
    vsapi->freeFrame(result);
    const VSMap *from = vsapi->getFramePropertiesRO(source);
    VSMap *to = vsapi->getFramePropertiesRW(dst);
    for (const char *key : kColourProps) {
        int missing = 0;
        int64_t value = vsapi->mapGetInt(from, key, 0, &missing);
        if (missing)
            vsapi->mapDeleteKey(to, key);
        else
            vsapi->mapSetInt(to, key, value, maReplace);
    }
    vsapi->freeFrame(source);
    return dst;
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

// The engine's keyword argument `name` (one of `args`) set to an integer.
void setEngineInt(std::vector<EngineArg> &args, const char *name, int64_t value) {
    for (EngineArg &arg : args) {
        if (arg.name == name) {
            arg.kind = EngineArg::Kind::Int;
            arg.integer = value;
            return;
        }
    }
    args.push_back(EngineArg{name, EngineArg::Kind::Int, value, 0.0, ""});
}

void createInterpolation(const VSMap *in, VSMap *out, const params::Function &function, VSCore *core,
                         const VSAPI *vsapi) {
    const std::string prefix = std::string(params::kNamespace) + "." + function.name + ": ";
    NodeRef src(vsapi, vsapi->mapGetNode(in, "clip", 0, nullptr));
    const VSVideoInfo *vi = vsapi->getVideoInfo(src.get());
    InterpData *data = nullptr;
    try {
        checkClip(vi, vsapi);
        Arguments args(in, function, vsapi);
        Rate rate = parseRate(args, vi);
        args.checkRemaining();
        int64_t overlap = tileOverlap(args);
        // Same format and size as the source.
        VSVideoInfo outVi = outputVideoInfo(vi, rate);

        if (!pythonAvailable())
            throw ArgError("needs a Python interpreter in the process; run it from python or vspipe");

        const VSVideoFormat &f = vi->format;
        bool native = f.colorFamily == cfRGB && f.sampleType == stFloat;
        std::vector<EngineArg> engineArgs = args.engineArgs();
        setEngineInt(engineArgs, "tile_overlap", overlap);
        engineArgs.push_back(EngineArg{"method", EngineArg::Kind::Text, 0, 0.0, function.method});
        engineArgs.push_back(EngineArg{"width", EngineArg::Kind::Int, vi->width, 0.0, ""});
        engineArgs.push_back(EngineArg{"height", EngineArg::Kind::Int, vi->height, 0.0, ""});
        engineArgs.push_back(EngineArg{"sample_type", EngineArg::Kind::Text, 0, 0.0,
                                       (native && f.bitsPerSample == 16) ? "float16" : "float32"});
        int noMask = 0;
        NodeRef mask(vsapi, vsapi->mapGetNode(in, "mask", 0, &noMask)); // nullptr when not given
        if (mask.get()) {
            const VSVideoInfo *maskVi = vsapi->getVideoInfo(mask.get());
            checkMask(maskVi, vi, vsapi);
            const VSVideoFormat &m = maskVi->format;
            engineArgs.push_back(EngineArg{"mask_sample_type", EngineArg::Kind::Text, 0, 0.0, maskSampleType(m)});
            engineArgs.push_back(EngineArg{"mask_peak", EngineArg::Kind::Float, 0,
                                           m.sampleType == stFloat ? 1.0 : double((1 << m.bitsPerSample) - 1), ""});
        }

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
        Engine *engine = createEngine(kEngineModule, engineArgs, err);
        if (!engine)
            throw ArgError(err);

        data = new InterpData;
        data->prefix = prefix;
        data->srcVi = *vsapi->getVideoInfo(rgb.get());
        data->rate = rate;
        data->sc = args.integer("sc") != 0;
        data->markRepeats = !native;
        data->engine = shareEngine(engine);
        data->dedup = args.integer("dedup") != 0;
        data->dedupThreshold = args.real("dedup_threshold");
        data->dedupMax = static_cast<int>(args.integer("dedup_max"));
        if (data->dedup) {
            DifferenceData *diff = new DifferenceData{prefix, rgb.release(), data->engine};
            VSFilterDependency diffDeps[] = {{diff->node, rpGeneral}};
            std::string diffName = std::string(function.name) + "_difference";
            rgb.reset(vsapi->createVideoFilter2(diffName.c_str(), &data->srcVi, differenceGetFrame, differenceFree,
                                                fmParallel, diffDeps, 1, diff, core));
            if (!rgb.get())
                throw ArgError("could not create the internal difference filter");
        }
        data->node = rgb.release();
        data->maskFrames = mask.get() ? vsapi->getVideoInfo(mask.get())->numFrames : 0;
        data->mask = mask.release();

        VSVideoInfo interpVi = outVi;
        interpVi.format = data->srcVi.format;
        VSFilterDependency deps[] = {{data->node, rpGeneral}, {data->mask, rpGeneral}};
        const int depCount = data->mask ? 2 : 1;
        if (native) {
            InterpData *d = data;
            data = nullptr; // owned by the filter from here on (freed by interpFree)
            vsapi->createVideoFilter(out, function.name, &interpVi, interpGetFrame, interpFree, fmParallel, deps,
                                     depCount, d, core);
            return;
        }

        std::string internalName = std::string(function.name) + "_interpolate";
        InterpData *d = data;
        data = nullptr;
        const bool dedup = d->dedup;
        NodeRef interp(vsapi, vsapi->createVideoFilter2(internalName.c_str(), &interpVi, interpGetFrame, interpFree,
                                                        fmParallel, deps, depCount, d, core));
        if (!interp.get())
            throw ArgError("could not create the internal interpolation filter");

        uint32_t srcId = vsapi->queryVideoFormatID(f.colorFamily, f.sampleType, f.bitsPerSample, f.subSamplingW,
                                                   f.subSamplingH, core);
        NodeRef back(vsapi, resizeClip(interp.get(), srcId, color, false, core, vsapi));
        // Output frame 0 is source frame 0 (no inference): it proves the way back works for these properties.
        requireConversion(back.get(), "convert the result back from RGB", color, vsapi);

        SelectData *sel = new SelectData;
        sel->srcVi = *vi;
        sel->rate = rate;
        sel->dedup = dedup;
        sel->src = src.release();
        sel->interpolated = back.release();
        VSFilterDependency selDeps[] = {{sel->src, rpGeneral}, {sel->interpolated, rpGeneral}};
        vsapi->createVideoFilter(out, function.name, &outVi, selectGetFrame, selectFree, fmParallel, selDeps, 2,
                                 sel, core);
    } catch (const std::exception &e) {
        if (data) {
            vsapi->freeNode(data->node);
            vsapi->freeNode(data->mask);
            delete data;
        }
        vsapi->mapSetError(out, (prefix + e.what()).c_str());
    }
}

void VS_CC filterCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    createInterpolation(in, out, *static_cast<const params::Function *>(userData), core, vsapi);
}

// vfi.Rate: the output length and frame rate a filter gives this clip with these rate arguments, and the reduced
// factor num/den (output frame n sits at source position n*den/num), so that Python need not redo rate.h.
void VS_CC rateCreate(const VSMap *in, VSMap *out, void *userData, VSCore *, const VSAPI *vsapi) {
    const params::Function &function = *static_cast<const params::Function *>(userData);
    const std::string prefix = std::string(params::kNamespace) + "." + function.name + ": ";
    VSNode *node = vsapi->mapGetNode(in, "clip", 0, nullptr);
    const VSVideoInfo vi = *vsapi->getVideoInfo(node);
    vsapi->freeNode(node);
    try {
        Arguments args(in, function, vsapi);
        Rate rate = parseRate(args, &vi);
        args.checkRemaining();
        VSVideoInfo outVi = outputVideoInfo(&vi, rate);
        vsapi->mapSetInt(out, "num", rate.num, maReplace);
        vsapi->mapSetInt(out, "den", rate.den, maReplace);
        vsapi->mapSetInt(out, "frames", outVi.numFrames, maReplace);
        vsapi->mapSetInt(out, "fps_num", outVi.fpsNum, maReplace);
        vsapi->mapSetInt(out, "fps_den", outVi.fpsDen, maReplace);
    } catch (const std::exception &e) {
        vsapi->mapSetError(out, (prefix + e.what()).c_str());
    }
}

} // namespace
} // namespace vfi

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    using namespace vfi::params;
    // the package's version (pyproject.toml), passed by plugin/build_backend.py
    vspapi->configPlugin(kPluginId, kNamespace, kPluginName, VS_MAKE_VERSION(VFI_VERSION_MAJOR, VFI_VERSION_MINOR),
                         VAPOURSYNTH_API_VERSION, 0, plugin);
    for (const Function &function : kFunctions)
        vspapi->registerFunction(function.name, function.args, function.returns,
                                 function.method[0] ? vfi::filterCreate : vfi::rateCreate,
                                 const_cast<Function *>(&function), plugin);
}
