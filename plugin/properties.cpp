// See properties.h.
#include "properties.h"

namespace vfi {

bool intPropNonzero(const VSMap *props, const char *key, const VSAPI *vsapi) {
    int err = 0;
    int64_t v = vsapi->mapGetInt(props, key, 0, &err);
    return !err && v != 0;
}

bool hasKey(const VSMap *props, const char *key, const VSAPI *vsapi) {
    return vsapi->mapNumElements(props, key) >= 0;
}

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

const VSFrame *copyWithDuration(const VSFrame *f, const Rate &rate, const VSVideoInfo &src, VSCore *core,
                                const VSAPI *vsapi) {
    VSFrame *dst = vsapi->copyFrame(f, core);
    vsapi->freeFrame(f);
    setDuration(vsapi->getFramePropertiesRW(dst), rate, src, vsapi);
    return dst;
}

} // namespace vfi
