// Reading and checking a call's arguments with its function's table (parameters.h), and the checks of the clip and
// the mask that need no engine. Every check throws ArgError with the words the user sees.
#ifndef VFI_ARGUMENTS_H
#define VFI_ARGUMENTS_H

#include <cstdint>
#include <string>
#include <vector>

#include <VapourSynth4.h>

#include "common.h"
#include "parameters.h"
#include "pybridge.h"
#include "rate.h"

namespace vfi {

// The values of one call, read with the function's parameter table: given or default. check() refuses a value the
// table does not allow, with the table's words: "<name> must be ... (got <value>)[; <note>]".
class Arguments {
public:
    Arguments(const VSMap *in, const params::Function &function, const VSAPI *vsapi);

    bool given(const char *name) const { return find(name).given; }
    int64_t integer(const char *name) const { return find(name).integer; }
    double real(const char *name) const { return find(name).real; }
    const std::string &text(const char *name) const { return find(name).text; }
    bool has(const char *name) const;

    // Throws unless the value (given or default) is one the table allows.
    void check(const char *name);

    // check() for every parameter not checked yet, in the table's order.
    void checkRemaining();

    // create_engine's keyword arguments that are parameters: each engine row as given, None where this call gives
    // none (the engine applies the table's default and the rules between parameters: vsrife/rules.py).
    std::vector<EngineArg> engineArgs() const;

private:
    struct Value {
        const params::Parameter *spec;
        bool given;
        int64_t integer;
        double real;
        std::string text;
        bool checked;
    };

    size_t index(const char *name) const;
    const Value &find(const char *name) const { return values_[index(name)]; }

    std::vector<Value> values_;
};

// Reads multi / factor_num+factor_den / fps_num+fps_den (exactly one way; multi=2 when none is given).
Rate parseRate(Arguments &args, const VSVideoInfo *vi);

// The output clip's length and frame rate: floor(n*num/den) frames at fps*num/den (variable stays variable).
VSVideoInfo outputVideoInfo(const VSVideoInfo *vi, const Rate &rate);

// Throws unless the clip is one the filters take: constant format and size, RGB/YUV/GRAY, at least 2 frames.
void checkClip(const VSVideoInfo *vi, const VSAPI *vsapi);

// The mask's sample type as create_engine names it: uint8, uint16, float16 or float32.
const char *maskSampleType(const VSVideoFormat &f);

// mask: GRAY, integer 8-16 bit or float 16/32 bit, the clip's size, one frame or as many as the clip.
void checkMask(const VSVideoInfo *mask, const VSVideoInfo *vi, const VSAPI *vsapi);

} // namespace vfi

#endif
