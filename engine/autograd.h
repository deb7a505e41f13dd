// Reverse-mode automatic differentiation.
//
// Each op that receives an input requiring gradients records a Node on its output: the inputs and a
// backward function. backward(loss) orders the recorded nodes (the tape) from the loss back to
// the leaves and runs them in reverse, accumulating gradients into leaf tensors (parameters).
// The graph is released afterwards, so each forward pass is differentiated once: a second
// backward that reaches a released tensor throws dsn::Error.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dsn {

struct Node {
  std::string op;              // op name, for error messages
  std::vector<Tensor> inputs;  // inputs that may need gradients (undefined entries allowed)
  // Returns one gradient per input (undefined where none flows) from the gradient of the
  // output. `output` is the forward output, passed in rather than stored to avoid a cycle.
  std::function<std::vector<Tensor>(const Tensor& grad_output, const Tensor& output)> backward;
};

namespace autograd {

// Whether ops record nodes on this thread (true unless a NoGradGuard is alive).
bool grad_enabled();

// Disables recording on this thread for its lifetime: inference mode.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any of `inputs` requires a gradient.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches a node to `output`, making it require a gradient.
void record(Tensor& output, std::string op, std::vector<Tensor> inputs,
            std::function<std::vector<Tensor>(const Tensor&, const Tensor&)> backward);

// Back-propagates from `root`. A one-element root starts from gradient 1; otherwise
// `grad_root` (same shape as root) is required. Leaf gradients accumulate into Tensor::grad().
void backward(const Tensor& root, const Tensor& grad_root = Tensor());

}  // namespace autograd
}  // namespace dsn
