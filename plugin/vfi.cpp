// vfi: VapourSynth API4 plugin for video frame interpolation.
//
// core.vfi.RIFE and core.vfi.RRIN interpolate; core.vfi.Rate answers the rate arithmetic alone. Their parameters
// (names, types, defaults, allowed values, messages) come from parameters.h, which `python -m vsrife.codegen`
// writes from the table in vsrife/parameters.py; README.md's parameter tables come from the same table.
//
// Both filters are one createInterpolation and one getFrame; the table's Function row holds what differs. This file
// builds a filter's graph and registers the functions; the other files hold one job each:
//     arguments      reading and checking a call's arguments, the rate, the output VideoInfo, the clip and the mask
//     interpolate    the interpolating filter: output frame -> (source a, a+1, t), with dedup (last drawing a, next
//                    drawing b, t) found by staged lazy requests; the pixels come from the engine
//     helper_filters the difference filter (dedup) and the selector (non-RGB clips)
//     colour         conversion to and from RGBS with the core's resize
//     properties     the frame properties the filters read and write, output durations
//     rate.h         the rate arithmetic; pybridge the one door into Python (vsrife.engine, docs/INTERFACES.md)
//
// Graph: RGBS/RGBH clips go straight to the interpolating filter. Any other constant format is converted with the
// core's resize to RGBS, interpolated, converted back, and a small selector returns the untouched source frames
// for the outputs that need no inference, so those stay bit-identical to the input:
//     final = selector(src, resize(interp(resize(src))))
#include <string>
#include <vector>

#include <VSHelper4.h>
#include <VapourSynth4.h>

#include "arguments.h"
#include "colour.h"
#include "common.h"
#include "helper_filters.h"
#include "interpolate.h"
#include "parameters.h"
#include "pybridge.h"
#include "rate.h"

namespace vfi {
namespace {

// The Python module whose create_engine() builds a filter's engine.
constexpr const char *kEngineModule = "vsrife.engine";

void createInterpolation(const VSMap *in, VSMap *out, const params::Function &function, VSCore *core,
                         const VSAPI *vsapi) {
    const std::string prefix = std::string(params::kNamespace) + "." + function.name + ": ";
    NodeRef src(vsapi, vsapi->mapGetNode(in, params::name::kClip, 0, nullptr));
    const VSVideoInfo *vi = vsapi->getVideoInfo(src.get());
    InterpData *data = nullptr;
    try {
        checkClip(vi, vsapi);
        Arguments args(in, function, vsapi);
        Rate rate = parseRate(args, vi);
        args.checkRemaining();
        // Same format and size as the source.
        VSVideoInfo outVi = outputVideoInfo(vi, rate);

        if (!pythonAvailable())
            throw ArgError("needs a Python interpreter in the process; run it from python or vspipe");

        const VSVideoFormat &f = vi->format;
        bool native = f.colorFamily == cfRGB && f.sampleType == stFloat;
        std::vector<EngineArg> engineArgs = args.engineArgs();
        engineArgs.push_back(EngineArg{params::engine::kMethod, EngineArg::Kind::Text, 0, 0.0, function.method});
        engineArgs.push_back(EngineArg{params::engine::kWidth, EngineArg::Kind::Int, vi->width, 0.0, ""});
        engineArgs.push_back(EngineArg{params::engine::kHeight, EngineArg::Kind::Int, vi->height, 0.0, ""});
        engineArgs.push_back(EngineArg{params::engine::kSampleType, EngineArg::Kind::Text, 0, 0.0,
                                       (native && f.bitsPerSample == 16) ? "float16" : "float32"});
        int noMask = 0;
        NodeRef mask(vsapi, vsapi->mapGetNode(in, params::name::kMask, 0, &noMask)); // nullptr when not given
        if (mask.get()) {
            const VSVideoInfo *maskVi = vsapi->getVideoInfo(mask.get());
            checkMask(maskVi, vi, vsapi);
            const VSVideoFormat &m = maskVi->format;
            engineArgs.push_back(
                EngineArg{params::engine::kMaskSampleType, EngineArg::Kind::Text, 0, 0.0, maskSampleType(m)});
            engineArgs.push_back(EngineArg{params::engine::kMaskPeak, EngineArg::Kind::Float, 0,
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
        data->sc = args.integer(params::name::kSc) != 0;
        data->markRepeats = !native;
        data->engine = shareEngine(engine);
        data->dedup = args.integer(params::name::kDedup) != 0;
        data->dedupThreshold = args.real(params::name::kDedupThreshold);
        data->dedupMax = static_cast<int>(args.integer(params::name::kDedupMax));
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
    VSNode *node = vsapi->mapGetNode(in, params::name::kClip, 0, nullptr);
    const VSVideoInfo vi = *vsapi->getVideoInfo(node);
    vsapi->freeNode(node);
    try {
        Arguments args(in, function, vsapi);
        Rate rate = parseRate(args, &vi);
        args.checkRemaining();
        VSVideoInfo outVi = outputVideoInfo(&vi, rate);
        vsapi->mapSetInt(out, params::name::kNum, rate.num, maReplace);
        vsapi->mapSetInt(out, params::name::kDen, rate.den, maReplace);
        vsapi->mapSetInt(out, params::name::kFrames, outVi.numFrames, maReplace);
        vsapi->mapSetInt(out, params::name::kFpsNum, outVi.fpsNum, maReplace);
        vsapi->mapSetInt(out, params::name::kFpsDen, outVi.fpsDen, maReplace);
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
