// See interpolate.h.
#include "interpolate.h"

#include <atomic>
#include <map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "properties.h"
#include "pybridge.h"

namespace vfi {
namespace {

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

} // namespace

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

} // namespace vfi
