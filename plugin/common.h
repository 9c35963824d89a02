// What the plugin's files share: the error a refused argument throws, an owned node reference, and the engine that
// the filters of one instance share.
#ifndef VFI_COMMON_H
#define VFI_COMMON_H

#include <memory>
#include <stdexcept>
#include <string>

#include <VapourSynth4.h>

#include "pybridge.h"

namespace vfi {

// Thrown while a filter is created; its message becomes the creation error, after the "vfi.<function>: " prefix.
struct ArgError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

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

// One engine per filter instance, shared by the interpolating filter and, with dedup, the difference filter.
using EnginePtr = std::shared_ptr<Engine>;

inline EnginePtr shareEngine(Engine *engine) {
    return EnginePtr(engine, destroyEngine);
}

} // namespace vfi

#endif
