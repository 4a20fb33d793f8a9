#include "fwha/flow.h"

namespace fwha {

const char* to_string(FlowChangeKind kind) {
  switch (kind) {
    case FlowChangeKind::New: return "new";
    case FlowChangeKind::Update: return "update";
    case FlowChangeKind::Destroy: return "destroy";
  }
  return "?";
}

}  // namespace fwha
