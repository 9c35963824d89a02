// See pybridge.h. Python.h comes first, as the Python docs require.
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030C0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>

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

InterpResult interpolate(Engine *engine, const Plane in0[3], const Plane in1[3], const Plane out[3], double t,
                         bool detectSceneChange, int source0, int source1, std::string &err) {
    GIL gil;
    const Plane *planes[3] = {in0, in1, out};
    Ref buffers[3][3];
    Ref views[3][3];
    Ref frames[3];
    bool ok = true;
    for (int f = 0; f < 3 && ok; f++) {
        Ref pairs[3];
        for (int p = 0; p < 3 && ok; p++) {
            const Plane &pl = planes[f][p];
            Py_ssize_t size = static_cast<Py_ssize_t>(pl.stride) * pl.height;
            buffers[f][p] = Ref(newPlaneBuffer(pl.data, size, f == 2));
            if (!buffers[f][p]) {
                ok = false;
                break;
            }
            views[f][p] = Ref(PyMemoryView_FromObject(buffers[f][p].get()));
            if (views[f][p])
                pairs[p] = Ref(Py_BuildValue("(On)", views[f][p].get(), static_cast<Py_ssize_t>(pl.stride)));
            ok = views[f][p] && pairs[p];
        }
        if (ok) {
            frames[f] = Ref(Py_BuildValue("(OOO)", pairs[0].get(), pairs[1].get(), pairs[2].get()));
            ok = static_cast<bool>(frames[f]);
        }
    }

    InterpResult result = InterpResult::Error;
    if (ok) {
        Ref detect(PyBool_FromLong(detectSceneChange));
        Ref ret(PyObject_CallFunction(engine->interpolate, "OOOdO(ii)", frames[0].get(), frames[1].get(),
                                      frames[2].get(), t, detect.get(), source0, source1));
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

    // The buffers point into VapourSynth frames that are freed after this returns. Release our memoryviews; if an
    // export survives (the engine kept an array made from a plane), the frames must stay alive, so the caller leaks
    // them instead of risking a use after free. A reference cycle (an exception's traceback) may be all that holds
    // an export, so collect once before concluding.
    for (int f = 0; f < 3; f++)
        frames[f] = Ref();
    for (int f = 0; f < 3; f++) {
        for (int p = 0; p < 3; p++) {
            if (views[f][p]) {
                Ref r(PyObject_CallMethod(views[f][p].get(), "release", nullptr));
                if (!r)
                    PyErr_Clear();
            }
        }
    }
    auto exported = [&buffers]() {
        for (int f = 0; f < 3; f++)
            for (int p = 0; p < 3; p++)
                if (buffers[f][p] && reinterpret_cast<PlaneBuffer *>(buffers[f][p].get())->exports > 0)
                    return true;
        return false;
    };
    if (exported()) {
        PyGC_Collect();
        for (int f = 0; f < 3; f++)
            for (int p = 0; p < 3; p++)
                if (views[f][p] && !Ref(PyObject_CallMethod(views[f][p].get(), "release", nullptr)))
                    PyErr_Clear();
    }
    if (exported()) {
        err = "internal error: the engine kept a reference to frame memory after interpolate() returned";
        return InterpResult::BufferKept;
    }
    for (int f = 0; f < 3; f++)
        for (int p = 0; p < 3; p++)
            if (buffers[f][p])
                reinterpret_cast<PlaneBuffer *>(buffers[f][p].get())->data = nullptr;
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
