#include "runtime/config/yaml_cost.h"

#include <map>
#include <sstream>
#include <vector>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

namespace mitigate {
namespace {

// Thrown from the handler to stop the parser at the first limit crossed.
struct LimitCrossed {
    YamlCostProblem problem;
};

class CostCounter : public YAML::EventHandler {
  public:
    explicit CostCounter(const YamlCostLimits& limits) : limits_(limits) {}

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  const std::string&) override {
        leaf(mark, anchor);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        const auto found = anchors_.find(anchor);
        const Size named = found != anchors_.end() ? found->second : Size{1, 1};
        add(mark, named.nodes, static_cast<int>(open_.size()) + named.depth);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        start(mark, anchor);
    }
    void OnSequenceEnd() override { end(); }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        start(mark, anchor);
    }
    void OnMapEnd() override { end(); }

  private:
    struct Size {
        std::size_t nodes;
        int depth;  // levels below and including the node
    };
    struct Open {
        YAML::anchor_t anchor;
        std::size_t nodes_before;
        int deepest;  // the deepest level reached inside, absolute
    };

    void add(const YAML::Mark& mark, std::size_t nodes, int depth) {
        total_ += nodes;
        if (total_ > limits_.max_nodes) {
            throw LimitCrossed{{mark, "the YAML expands to more than " +
                                          std::to_string(limits_.max_nodes) +
                                          " nodes (aliases counted as what they name)"}};
        }
        if (depth > limits_.max_depth) {
            throw LimitCrossed{{mark, "the YAML nests deeper than " +
                                          std::to_string(limits_.max_depth) +
                                          " levels (aliases counted as what they name)"}};
        }
        for (auto& open : open_) {
            open.deepest = std::max(open.deepest, depth);
        }
    }
    void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
        add(mark, 1, static_cast<int>(open_.size()) + 1);
        if (anchor != YAML::NullAnchor) {
            anchors_[anchor] = {1, 1};
        }
    }
    void start(const YAML::Mark& mark, YAML::anchor_t anchor) {
        const int depth = static_cast<int>(open_.size()) + 1;
        add(mark, 1, depth);
        open_.push_back({anchor, total_ - 1, depth});
    }
    void end() {
        if (open_.empty()) {
            return;
        }
        const Open closed = open_.back();
        open_.pop_back();
        if (closed.anchor != YAML::NullAnchor) {
            anchors_[closed.anchor] = {total_ - closed.nodes_before,
                                       closed.deepest - static_cast<int>(open_.size())};
        }
    }

    const YamlCostLimits& limits_;
    std::size_t total_ = 0;
    std::vector<Open> open_;
    std::map<YAML::anchor_t, Size> anchors_;
};

}  // namespace

std::optional<YamlCostProblem> yaml_cost_problem(const std::string& text,
                                                 const YamlCostLimits& limits) {
    std::istringstream stream(text);
    try {
        YAML::Parser parser(stream);
        CostCounter counter(limits);
        while (parser.HandleNextDocument(counter)) {
        }
    } catch (const LimitCrossed& crossed) {
        return crossed.problem;
    } catch (const YAML::DeepRecursion& deep) {
        return YamlCostProblem{deep.mark, "the YAML nests too deeply to be read"};
    } catch (const YAML::Exception&) {
        return std::nullopt;  // a syntax error: loading reports it, with its position
    }
    return std::nullopt;
}

}  // namespace mitigate
