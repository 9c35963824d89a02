// See pybridge.h. Python.h comes first, as the Python docs require.
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030C0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>

#include <algorithm>
#include <vector>

#include "pybridge.h"

namespace vfi {

class Engine {
public:
    PyObject *object = nullptr;      // what create_engine returned
    PyObject *interpolate = nullptr; // its bound interpolate method
};

namespace {

// Holds the GIL for the lifetime of the object; any VapourSynth thread may take it.
class GIL {
public:
    GIL() : state_(PyGILState_Ensure()) {}
    ~GIL() { PyGILState_Release(state_); }
    GIL(const GIL &) = delete;
    GIL &operator=(const GIL &) = delete;

private:
    PyGILState_STATE state_;
};

// Owns one reference.
class Ref {
public:
    Ref() = default;
    explicit Ref(PyObject *o) : o_(o) {}
    ~Ref() { Py_XDECREF(o_); }
    Ref(const Ref &) = delete;
    Ref &operator=(const Ref &) = delete;
    Ref(Ref &&other) noexcept : o_(other.release()) {}
    Ref &operator=(Ref &&other) noexcept {
        if (this != &other) {
            Py_XDECREF(o_);
            o_ = other.release();
        }
        return *this;
    }
    PyObject *get() const { return o_; }
    explicit operator bool() const { return o_ != nullptr; }
    PyObject *release() {
        PyObject *o = o_;
        o_ = nullptr;
        return o;
    }

private:
    PyObject *o_ = nullptr;
};

std::string utf8(PyObject *str) {
    Py_ssize_t size = 0;
    const char *s = str ? PyUnicode_AsUTF8AndSize(str, &size) : nullptr;
    if (!s) {
        PyErr_Clear();
        return std::string();
    }
    return std::string(s, static_cast<size_t>(size));
}

// str() of the pending exception, or its type's name when that is empty; clears the error indicator.
std::string takeError() {
    Ref exc(PyErr_GetRaisedException());
    if (!exc)
        return "unknown error (no Python exception was set)";
    std::string msg;
    {
        Ref s(PyObject_Str(exc.get()));
        msg = utf8(s.get());
    }
    if (msg.empty()) {
        Ref type(PyObject_Type(exc.get()));
        Ref name(type ? PyType_GetName(reinterpret_cast<PyTypeObject *>(type.get())) : nullptr);
        msg = utf8(name.get());
    }
    PyErr_Clear();
    if (msg.empty())
        msg = "unknown error";
    return msg;
}

PyObject *newStr(const std::string &s) {
    return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
}

// A buffer exporter over one plane of a VapourSynth frame that counts its live exports. The engine receives a
// memoryview of it. Arrays derived from that memoryview (numpy.frombuffer, torch.frombuffer, casts) keep an export
// of this object alive, so after interpolate() returns a nonzero count means something still points into the frame.
struct PlaneBuffer {
    PyObject_HEAD
    char *data;
    Py_ssize_t size;
    int readonly;
    Py_ssize_t exports;
};

int planeGetBuffer(PyObject *self, Py_buffer *view, int flags) {
    PlaneBuffer *b = reinterpret_cast<PlaneBuffer *>(self);
    if (!b->data) {
        // Looked up by name: a data symbol like PyExc_BufferError would have to resolve when the plugin loads.
        Ref builtins(PyImport_ImportModule("builtins"));
        Ref type(builtins ? PyObject_GetAttrString(builtins.get(), "BufferError") : nullptr);
        if (type)
            PyErr_SetString(type.get(), "the VapourSynth frame behind this plane has been released");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, b->data, b->size, b->readonly, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

void planeReleaseBuffer(PyObject *self, Py_buffer *) {
    reinterpret_cast<PlaneBuffer *>(self)->exports--;
}

PyType_Slot planeSlots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void *>(planeGetBuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void *>(planeReleaseBuffer)},
    {0, nullptr},
};

PyType_Spec planeSpec = {"vfi.PlaneBuffer", sizeof(PlaneBuffer), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, planeSlots};

// Created on first use, with the GIL held; lives as long as the process.
PyObject *planeType() {
    static PyObject *type = nullptr;
    if (!type)
        type = PyType_FromSpec(&planeSpec);
    return type;
}

PyObject *newPlaneBuffer(uint8_t *data, Py_ssize_t size, bool writable) {
    PyObject *type = planeType();
    if (!type)
        return nullptr;
    PyObject *o = PyType_GenericAlloc(reinterpret_cast<PyTypeObject *>(type), 0);
    if (!o)
        return nullptr;
    PlaneBuffer *b = reinterpret_cast<PlaneBuffer *>(o);
    b->data = reinterpret_cast<char *>(data);
    b->size = size;
    b->readonly = writable ? 0 : 1;
    b->exports = 0;
    return o;
}

bool setItem(PyObject *dict, const char *key, PyObject *value) {
    if (!value)
        return false;
    int rc = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return rc == 0;
}

} // namespace

bool pythonAvailable() {
    typedef int (*IsInitialized)(void);
    // Looked up at run time so that a host without libpython gets an error message, not a failed symbol lookup.
    static const IsInitialized isInitialized =
        reinterpret_cast<IsInitialized>(dlsym(RTLD_DEFAULT, "Py_IsInitialized"));
    return isInitialized && isInitialized();
}

void withoutGIL(void (*fn)(void *), void *arg) {
    if (!pythonAvailable()) {
        fn(arg);
        return;
    }
    // Ensure makes this thread the GIL holder whether or not it already was; SaveThread then releases it fully.
    GIL gil;
    PyThreadState *saved = PyEval_SaveThread();
    fn(arg);
    PyEval_RestoreThread(saved);
}

namespace {

// The Python value of one keyword argument (a new reference), or nullptr with a Python error set.
PyObject *engineValue(const EngineArg &arg) {
    switch (arg.kind) {
    case EngineArg::Kind::Int:
        return PyLong_FromLongLong(arg.integer);
    case EngineArg::Kind::Float:
        return PyFloat_FromDouble(arg.real);
    case EngineArg::Kind::Text:
        return newStr(arg.text);
    case EngineArg::Kind::None:
    default:
        return Py_BuildValue("");
    }
}

} // namespace

Engine *createEngine(const char *module, const std::vector<EngineArg> &kwargs, std::string &err) {
    GIL gil;
    Ref mod(PyImport_ImportModule(module));
    if (!mod) {
        err = std::string("could not import ") + module +
              " (is the vapoursynth-vfi package installed for this Python?): " + takeError();
        return nullptr;
    }
    Ref factory(PyObject_GetAttrString(mod.get(), "create_engine"));
    if (!factory) {
        err = std::string(module) + " has no create_engine: " + takeError();
        return nullptr;
    }

    Ref dict(PyDict_New());
    Ref noArgs(PyTuple_New(0));
    bool ok = dict && noArgs;
    for (const EngineArg &arg : kwargs)
        ok = ok && setItem(dict.get(), arg.name.c_str(), engineValue(arg));
    if (!ok) {
        err = takeError();
        return nullptr;
    }

    Ref engine(PyObject_Call(factory.get(), noArgs.get(), dict.get()));
    if (!engine) {
        err = takeError();
        return nullptr;
    }
    Ref method(PyObject_GetAttrString(engine.get(), "interpolate"));
    if (!method) {
        err = "the engine has no interpolate method: " + takeError();
        return nullptr;
    }
    Engine *e = new Engine;
    e->object = engine.release();
    e->interpolate = method.release();
    return e;
}

namespace {

// Frames handed to Python as tuples of (memoryview, stride) per plane, over buffers that count their exports. Call
// release() when Python is done: it drops the views and tells whether something in Python still points into a frame.
class FrameViews {
public:
    // Adds a frame of `count` planes; nullptr (with a Python error set) on failure.
    PyObject *add(const Plane *planes, int count, bool writable) {
        std::vector<Ref> pairs;
        for (int p = 0; p < count; p++) {
            const Plane &pl = planes[p];
            Ref buffer(newPlaneBuffer(pl.data, static_cast<Py_ssize_t>(pl.stride) * pl.height, writable));
            if (!buffer)
                return nullptr;
            Ref view(PyMemoryView_FromObject(buffer.get()));
            buffers_.push_back(std::move(buffer));
            if (!view)
                return nullptr;
            pairs.emplace_back(Py_BuildValue("(On)", view.get(), static_cast<Py_ssize_t>(pl.stride)));
            views_.push_back(std::move(view));
            if (!pairs.back())
                return nullptr;
        }
        Ref tuple(PyTuple_New(count));
        if (!tuple)
            return nullptr;
        for (int p = 0; p < count; p++)
            PyTuple_SetItem(tuple.get(), p, pairs[static_cast<size_t>(p)].release()); // steals the reference
        frames_.push_back(std::move(tuple));
        return frames_.back().get();
    }

    // Releases the memoryviews; false when an export survives (the engine kept an array made from a plane), so the
    // frames must stay alive. A reference cycle (an exception's traceback) may be all that holds an export, so
    // collect once before concluding.
    bool release() {
        frames_.clear();
        releaseViews();
        if (exported()) {
            PyGC_Collect();
            releaseViews();
        }
        if (exported())
            return false;
        for (Ref &buffer : buffers_)
            reinterpret_cast<PlaneBuffer *>(buffer.get())->data = nullptr;
        return true;
    }

private:
    void releaseViews() {
        for (Ref &view : views_)
            if (!Ref(PyObject_CallMethod(view.get(), "release", nullptr)))
                PyErr_Clear();
    }

    bool exported() const {
        return std::any_of(buffers_.begin(), buffers_.end(), [](const Ref &buffer) {
            return reinterpret_cast<PlaneBuffer *>(buffer.get())->exports > 0;
        });
    }

    std::vector<Ref> buffers_;
    std::vector<Ref> views_;
    std::vector<Ref> frames_;
};

const char *const kKeptBuffer = "internal error: the engine kept a reference to frame memory after it returned";

} // namespace

InterpResult interpolate(Engine *engine, const Plane in0[3], const Plane in1[3], const Plane out[3], double t,
                         bool detectSceneChange, int source0, int source1, const MaskPlane *mask, std::string &err) {
    GIL gil;
    InterpResult result = InterpResult::Error;
    {
        FrameViews views;
        PyObject *frame0 = views.add(in0, 3, false);
        PyObject *frame1 = frame0 ? views.add(in1, 3, false) : nullptr;
        PyObject *output = frame1 ? views.add(out, 3, true) : nullptr;
        Ref maskArg;
        if (output && mask) {
            PyObject *plane = views.add(&mask->plane, 1, false);
            if (plane)
                maskArg = Ref(Py_BuildValue("(Oi)", PyTuple_GetItem(plane, 0), mask->number));
        } else if (output) {
            maskArg = Ref(Py_BuildValue(""));
        }
        if (maskArg) {
            Ref detect(PyBool_FromLong(detectSceneChange));
            Ref ret(PyObject_CallFunction(engine->interpolate, "OOOdO(ii)O", frame0, frame1, output, t, detect.get(),
                                          source0, source1, maskArg.get()));
            if (!ret) {
                err = takeError();
            } else {
                int truth = PyObject_IsTrue(ret.get());
                if (truth < 0)
                    err = "interpolate() returned something that is not a bool: " + takeError();
                else
                    result = truth ? InterpResult::Interpolated : InterpResult::SceneCut;
            }
        } else {
            err = takeError();
        }
        maskArg = Ref();
        if (!views.release()) {
            err = kKeptBuffer;
            return InterpResult::BufferKept;
        }
    }
    return result;
}

InterpResult difference(Engine *engine, const Plane in0[3], const Plane in1[3], int source0, int source1,
                        double *value, std::string &err) {
    GIL gil;
    InterpResult result = InterpResult::Error;
    FrameViews views;
    PyObject *frame0 = views.add(in0, 3, false);
    PyObject *frame1 = frame0 ? views.add(in1, 3, false) : nullptr;
    if (frame1) {
        Ref ret(PyObject_CallMethod(engine->object, "difference", "OO(ii)", frame0, frame1, source0, source1));
        double number = ret ? PyFloat_AsDouble(ret.get()) : -1.0;
        if (!ret || PyErr_Occurred()) {
            err = "difference() failed: " + takeError();
        } else {
            *value = number;
            result = InterpResult::Interpolated;
        }
    } else {
        err = takeError();
    }
    if (!views.release()) {
        err = kKeptBuffer;
        return InterpResult::BufferKept;
    }
    return result;
}

void destroyEngine(Engine *engine) {
    if (!engine)
        return;
    if (pythonAvailable()) {
        GIL gil;
        Py_XDECREF(engine->interpolate);
        Py_XDECREF(engine->object);
    } // else: the interpreter is gone; its objects went with it
    delete engine;
}

} // namespace vfi
