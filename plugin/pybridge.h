// The plugin's only door into Python: create an engine from vsrife.engine and call its interpolate().
//
// Compiled against the running Python's headers with Py_LIMITED_API=3.12 and not linked to libpython: the host
// process (python or vspipe) provides the symbols. Every entry point takes the GIL itself (PyGILState_Ensure), so
// it may be called from any VapourSynth thread. Nothing VapourSynth-specific lives here.
#ifndef VFI_PYBRIDGE_H
#define VFI_PYBRIDGE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vfi {

// True when the process has a Python interpreter (its C API is loaded and Py_IsInitialized() is true).
// Safe to call in a host without libpython: then it returns false instead of failing symbol lookup.
bool pythonAvailable();

// Runs fn with the GIL released (if the calling thread holds it), so that the frame requests a filter constructor
// makes synchronously can reach upstream filters written in Python. fn must not touch Python.
void withoutGIL(void (*fn)(void *), void *arg);

// One keyword argument of create_engine: None, an int, a float or a str.
struct EngineArg {
    enum class Kind { None, Int, Float, Text };
    std::string name;
    Kind kind = Kind::None;
    int64_t integer = 0;
    double real = 0.0;
    std::string text;
};

struct Plane {
    uint8_t *data;     // read-only for input planes
    ptrdiff_t stride;  // bytes
    int height;
};

enum class InterpResult {
    Interpolated, // out was written
    SceneCut,     // engine detected a cut; out untouched
    Error,        // exception; message in err
    BufferKept    // the engine kept a buffer export of a frame: the frames must not be freed (engine bug)
};

class Engine;

// <module>.create_engine(**kwargs). Returns nullptr and sets err (no prefix) on failure.
Engine *createEngine(const char *module, const std::vector<EngineArg> &kwargs, std::string &err);

// One plane of a GRAY mask frame and its number in the mask clip (the engine keeps its tensor by that number).
struct MaskPlane {
    Plane plane;
    int number;
};

// engine.interpolate(frame0, frame1, out, t, detect_scene_change, (source0, source1), mask); each frame is a tuple of
// 3 (memoryview, stride); source0 and source1 are the numbers of in0 and in1 in the source clip; mask is None or
// ((memoryview, stride), number).
InterpResult interpolate(Engine *engine, const Plane in0[3], const Plane in1[3], const Plane out[3], double t,
                         bool detectSceneChange, int source0, int source1, const MaskPlane *mask, std::string &err);

// engine.difference(frame0, frame1, (source0, source1)) into *value: how far frame1 is from being a repeat of
// frame0. Returns Interpolated on success (value set), Error or BufferKept otherwise.
InterpResult difference(Engine *engine, const Plane in0[3], const Plane in1[3], int source0, int source1,
                        double *value, std::string &err);

// Drops the engine (takes the GIL; leaks it if the interpreter is already gone).
void destroyEngine(Engine *engine);

} // namespace vfi

#endif
