// See arguments.h.
#include "arguments.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace vfi {
namespace {

std::string fmtDouble(double d) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%g", d);
    return buf;
}

std::string fraction(int64_t num, int64_t den) {
    return std::to_string(num) + "/" + std::to_string(den);
}

bool admits(const params::Allowed &allowed, double v) {
    if (!allowed.range)
        return v == allowed.value;
    if (allowed.hasLow && !(allowed.lowOpen ? v > allowed.low : v >= allowed.low))
        return false;
    return !allowed.hasHigh || (allowed.highOpen ? v < allowed.high : v <= allowed.high); // NaN fails every test
}

} // namespace

Arguments::Arguments(const VSMap *in, const params::Function &function, const VSAPI *vsapi) {
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

bool Arguments::has(const char *name) const {
    return std::any_of(values_.begin(), values_.end(),
                       [name](const Value &v) { return std::strcmp(v.spec->name, name) == 0; });
}

void Arguments::check(const char *name) {
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

void Arguments::checkRemaining() {
    for (Value &value : values_)
        if (!value.checked)
            check(value.spec->name);
}

std::vector<EngineArg> Arguments::engineArgs() const {
    std::vector<EngineArg> args;
    for (const char *name : params::kEngineParameters) {
        EngineArg arg{name, EngineArg::Kind::None, 0, 0.0, ""};
        if (has(name) && given(name)) {
            const Value &value = find(name);
            arg.integer = value.integer;
            arg.real = value.real;
            arg.text = value.text;
            switch (value.spec->type) {
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
                throw ArgError(std::string("internal error: the clip ") + name + " cannot go to the engine");
            }
        }
        args.push_back(arg);
    }
    return args;
}

size_t Arguments::index(const char *name) const {
    for (size_t i = 0; i < values_.size(); i++)
        if (std::strcmp(values_[i].spec->name, name) == 0)
            return i;
    throw ArgError(std::string("internal error: no parameter ") + name + " in this function's table");
}

Rate parseRate(Arguments &args, const VSVideoInfo *vi) {
    bool hasMulti = args.given(params::name::kMulti);
    bool hasFnum = args.given(params::name::kFactorNum), hasFden = args.given(params::name::kFactorDen);
    bool hasPnum = args.given(params::name::kFpsNum), hasPden = args.given(params::name::kFpsDen);
    int64_t fnum = args.integer(params::name::kFactorNum), fden = args.integer(params::name::kFactorDen);
    int64_t pnum = args.integer(params::name::kFpsNum), pden = args.integer(params::name::kFpsDen);

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
        args.check(params::name::kMulti);
        num = args.integer(params::name::kMulti);
        den = 1;
    }

    Rate rate;
    if (!reduceInto(num, den, INT_MAX, &rate.num, &rate.den))
        throw ArgError("the rate factor is too large or too finely divided (its reduced numerator and denominator "
                       "must each be at most 2147483647)");
    return rate;
}

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

} // namespace vfi
