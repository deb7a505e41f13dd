#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/backend.h"
#include "engine/error.h"

namespace dsn::autograd {
namespace {

thread_local bool tls_grad_enabled = true;

// Replaces the node of every differentiated tensor. Without it a tensor whose node was freed
// looks like a leaf, and a second backward through it would silently drop the gradient of
// everything upstream.
const std::shared_ptr<Node>& released_node() {
  static const std::shared_ptr<Node> node = [] {
    auto released = std::make_shared<Node>();
    released->op = "released";
    return released;
  }();
  return node;
}

// Adds `grad` into `*slot`, allocating the slot on first use.
void accumulate_into(std::shared_ptr<TensorImpl>& slot, const Tensor& grad) {
  if (!slot) {
    slot = grad.clone().impl_ptr();
    return;
  }
  Tensor existing(slot);
  DSN_CHECK(existing.shape() == grad.shape(), "gradient of shape {} for a tensor of shape {}",
            to_string(grad.shape()), to_string(existing.shape()));
  backend_for(existing.device())
      .accumulate(grad.numel(), grad.data<float>(), existing.data<float>());
}

// Orders the tensors reachable from root so that every tensor comes after its inputs.
std::vector<std::shared_ptr<TensorImpl>> topological_order(
    const std::shared_ptr<TensorImpl>& root) {
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<TensorImpl*> visited;
  // Iterative depth-first search: graphs of deep networks are long chains.
  std::vector<std::pair<std::shared_ptr<TensorImpl>, std::size_t>> stack;
  stack.emplace_back(root, 0);
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [impl, next_input] = stack.back();
    const std::size_t input_count = impl->grad_fn ? impl->grad_fn->inputs.size() : 0;
    if (next_input < input_count) {
      const Tensor& input = impl->grad_fn->inputs[next_input++];
      if (input.defined() && input.requires_grad() && visited.insert(input.impl()).second) {
        stack.emplace_back(input.impl_ptr(), 0);
      }
      continue;
    }
    order.push_back(impl);
    stack.pop_back();
  }
  return order;
}

}  // namespace

bool grad_enabled() { return tls_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(tls_grad_enabled) { tls_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { tls_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!tls_grad_enabled) return false;
  for (const Tensor* input : inputs) {
    if (input != nullptr && input->requires_grad()) return true;
  }
  return false;
}

void record(Tensor& output, std::string op, std::vector<Tensor> inputs,
            std::function<std::vector<Tensor>(const Tensor&, const Tensor&)> backward) {
  auto node = std::make_shared<Node>();
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
}

void backward(const Tensor& root, const Tensor& grad_root) {
  DSN_CHECK(root.requires_grad(),
            "backward: the root does not require a gradient (no parameter contributed to it, or "
            "it was computed under NoGradGuard)");
  Tensor seed = grad_root;
  if (!seed.defined()) {
    DSN_CHECK(root.numel() == 1, "backward: a root of shape {} needs an explicit gradient",
              to_string(root.shape()));
    seed = Tensor::full(root.shape(), 1.0f, root.device());
  }
  check_shape(seed, root.shape(), "backward: gradient of the root");

  const auto order = topological_order(root.impl_ptr());
  std::unordered_map<TensorImpl*, std::shared_ptr<TensorImpl>> grads;
  grads[root.impl()] = seed.impl_ptr();

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const std::shared_ptr<TensorImpl>& impl = *it;
    auto found = grads.find(impl.get());
    if (found == grads.end()) continue;  // no gradient reached this tensor
    Tensor grad(found->second);
    if (!impl->grad_fn) {
      accumulate_into(impl->grad, grad);  // a leaf: keep the gradient for the optimiser
      grads.erase(found);
      continue;
    }
    DSN_CHECK(impl->grad_fn != released_node(),
              "backward: reached a tensor of shape {} whose graph an earlier backward already "
              "released; run the forward pass again (each forward pass supports one backward)",
              to_string(impl->shape));
    Node& node = *impl->grad_fn;
    std::vector<Tensor> input_grads = node.backward(grad, Tensor(impl));
    DSN_CHECK(input_grads.size() == node.inputs.size(),
              "backward of {} returned {} gradients for {} inputs", node.op, input_grads.size(),
              node.inputs.size());
    grads.erase(found);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      const Tensor& input = node.inputs[i];
      if (!input.defined() || !input.requires_grad() || !input_grads[i].defined()) continue;
      check_shape(input_grads[i], input.shape(), "gradient from " + node.op);
      accumulate_into(grads[input.impl()], input_grads[i]);
    }
  }
  // Release the graph: saved tensors and nodes are freed once differentiated.
  for (const auto& impl : order) {
    if (impl->grad_fn) impl->grad_fn = released_node();
  }
}

}  // namespace dsn::autograd
