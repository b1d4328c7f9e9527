#include <google/protobuf/descriptor.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <unordered_map>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

namespace {

// gRPC's status codes by number, as the outcome label.
const std::vector<std::string> grpc_codes{"OK",
                                          "CANCELLED",
                                          "UNKNOWN",
                                          "INVALID_ARGUMENT",
                                          "DEADLINE_EXCEEDED",
                                          "NOT_FOUND",
                                          "ALREADY_EXISTS",
                                          "PERMISSION_DENIED",
                                          "RESOURCE_EXHAUSTED",
                                          "FAILED_PRECONDITION",
                                          "ABORTED",
                                          "OUT_OF_RANGE",
                                          "UNIMPLEMENTED",
                                          "INTERNAL",
                                          "UNAVAILABLE",
                                          "DATA_LOSS",
                                          "UNAUTHENTICATED"};

// One call: counted with its status when the status is sent; unary calls
// are timed from their start.
class request_metrics final : public grpc::experimental::Interceptor {
 public:
  request_metrics(metrics::request_stats* stats, bool unary)
      : stats_(stats), unary_(unary), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (stats_ && m->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      auto code = static_cast<std::size_t>(m->GetSendStatus().error_code());
      if (unary_) {
        stats_->done(code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
      } else {
        stats_->count(code);
      }
    }
    m->Proceed();
  }

 private:
  metrics::request_stats* stats_;
  bool unary_;
  std::chrono::steady_clock::time_point start_;
};

// Every method of the services served, registered once at start: a call
// finds its counters without a lock (a method not listed is not counted).
class request_metrics_factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  request_metrics_factory(metrics::sink& stats, const std::vector<std::string>& services) {
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    for (const auto& name : services) {
      const auto* service = pool->FindServiceByName(name);
      if (!service) continue;
      for (int i = 0; i < service->method_count(); ++i) {
        auto method = service->full_name() + "/" + service->method(i)->name();
        methods_["/" + method] = &stats.requests("etcd", method, grpc_codes);
      }
    }
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    auto it = methods_.find(info->method());
    return new request_metrics(it == methods_.end() ? nullptr : it->second,
                               info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY);
  }

 private:
  std::unordered_map<std::string, metrics::request_stats*> methods_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_request_metrics(
    metrics::sink& stats, const std::vector<std::string>& services) {
  return std::make_unique<request_metrics_factory>(stats, services);
}

}  // namespace conclave::etcd::detail
