// etcd's Auth service on conclave's credentials: with a cluster secret, a
// client authenticates with the member key (or the secret) as its password
// and gets a token; every other request must carry a valid one. Without a
// secret, auth is off, as in etcd by default. etcd's users and roles are not
// conclave's model (access is the key a process holds): those methods say so.
//
// A token is stateless, so any master checks it: the user, the level the
// password proved, an expiry, and an HMAC of them under the cluster secret
// (which every master holds).
#include <cstdio>
#include <cstdlib>

#include "actors/auth.hpp"
#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

namespace {

constexpr std::chrono::hours token_lifetime{1};

std::string hex(const std::string& bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

// The token's signature: an HMAC under the cluster secret, which every master holds.
std::string signature(const api& a, const std::string& body) {
  return hex(auth::hmac(a.b.keys.master, "etcd-token|" + a.b.cluster + "|" + body));
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const grpc::Status not_enabled{grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: authentication is not enabled"};
const grpc::Status auth_failed{grpc::StatusCode::INVALID_ARGUMENT,
                               "etcdserver: authentication failed, invalid user ID or password"};
const grpc::Status set_by_secret{grpc::StatusCode::UNIMPLEMENTED,
                                 "conclave: auth is on exactly when the cluster has a secret (secret-file)"};
const grpc::Status not_conclaves{grpc::StatusCode::UNIMPLEMENTED,
                                 "conclave: access is the key a client holds (the member key or the cluster secret, "
                                 "given as the password); there are no users or roles to manage"};

struct auth_service final : etcdserverpb::Auth::Service {
  api& a;
  explicit auth_service(api& x) : a(x) {}

  grpc::Status Authenticate(grpc::ServerContext*, const etcdserverpb::AuthenticateRequest* req,
                            etcdserverpb::AuthenticateResponse* resp) override {
    if (!a.b.keys.enabled()) return not_enabled;
    const auto& k = a.b.keys;
    if (req->password().empty()) return auth_failed;
    auto level = auth::equal(req->password(), k.master) ? "master" : auth::equal(req->password(), k.member) ? "member" : "";
    if (!*level) return auth_failed;
    resp->set_token(make_token(a, req->name(), level));
    a.header(resp->mutable_header(), 0, a.b.term());
    return grpc::Status::OK;
  }
  grpc::Status AuthEnable(grpc::ServerContext*, const etcdserverpb::AuthEnableRequest*,
                          etcdserverpb::AuthEnableResponse*) override {
    return set_by_secret;
  }
  grpc::Status AuthDisable(grpc::ServerContext*, const etcdserverpb::AuthDisableRequest*,
                           etcdserverpb::AuthDisableResponse*) override {
    return set_by_secret;
  }
#define CONCLAVE_NO_USERS(Method, Req, Resp) \
  grpc::Status Method(grpc::ServerContext*, const etcdserverpb::Req*, etcdserverpb::Resp*) override { return not_conclaves; }
  CONCLAVE_NO_USERS(UserAdd, AuthUserAddRequest, AuthUserAddResponse)
  CONCLAVE_NO_USERS(UserGet, AuthUserGetRequest, AuthUserGetResponse)
  CONCLAVE_NO_USERS(UserList, AuthUserListRequest, AuthUserListResponse)
  CONCLAVE_NO_USERS(UserDelete, AuthUserDeleteRequest, AuthUserDeleteResponse)
  CONCLAVE_NO_USERS(UserChangePassword, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse)
  CONCLAVE_NO_USERS(UserGrantRole, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse)
  CONCLAVE_NO_USERS(UserRevokeRole, AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse)
  CONCLAVE_NO_USERS(RoleAdd, AuthRoleAddRequest, AuthRoleAddResponse)
  CONCLAVE_NO_USERS(RoleGet, AuthRoleGetRequest, AuthRoleGetResponse)
  CONCLAVE_NO_USERS(RoleList, AuthRoleListRequest, AuthRoleListResponse)
  CONCLAVE_NO_USERS(RoleDelete, AuthRoleDeleteRequest, AuthRoleDeleteResponse)
  CONCLAVE_NO_USERS(RoleGrantPermission, AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse)
  CONCLAVE_NO_USERS(RoleRevokePermission, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse)
#undef CONCLAVE_NO_USERS
};

}  // namespace

std::string make_token(const api& a, const std::string& user, const std::string& level) {
  auto body = level + "." + std::to_string(now_s() + token_lifetime.count() * 3600) + "." +
              hex(auth::random_nonce()) + "." + hex(user);
  return body + "." + signature(a, body);
}

grpc::Status api::authorize(const grpc::ServerContextBase* ctx, bool admin) const {
  static const grpc::Status no_token{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: user name is empty"};
  static const grpc::Status bad_token{grpc::StatusCode::UNAUTHENTICATED, "etcdserver: invalid auth token"};
  static const grpc::Status denied{grpc::StatusCode::PERMISSION_DENIED, "etcdserver: permission denied"};
  if (!b.keys.enabled()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("token");
  if (it == md.end()) it = md.find("authorization");  // through the JSON gateway, as etcd's
  if (it == md.end()) return no_token;
  std::string token(it->second.data(), it->second.size());
  auto dot = token.rfind('.');
  if (dot == std::string::npos) return bad_token;
  auto body = token.substr(0, dot);
  if (!auth::equal(token.substr(dot + 1), signature(*this, body))) return bad_token;
  auto first = body.find('.');
  auto second = body.find('.', first + 1);
  if (first == std::string::npos || second == std::string::npos) return bad_token;
  if (std::strtoll(body.substr(first + 1, second - first - 1).c_str(), nullptr, 10) < now_s()) return bad_token;
  if (admin && body.substr(0, first) != "master") return denied;
  return grpc::Status::OK;
}

std::unique_ptr<grpc::Service> make_auth_service(api& a) { return std::make_unique<auth_service>(a); }

}  // namespace conclave::etcd::detail
