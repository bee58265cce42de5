//! `etcdserverpb.Auth`, and who a request of any service is made by.
//!
//! A request's credentials are its `token` metadata (what etcd's clients
//! send; `authorization`, with or without `Bearer `, is accepted too, as
//! etcd's gateway sends it), else the common name of its verified client
//! certificate ([`ClientCommonName`], put there by the TLS layer when
//! `client_cert_auth` is on). [`caller`] resolves them with the node; the
//! checks themselves happen in `firebreak-raft` and the replicated state.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_client::proto::*;
use etcd_client::{Permission, PermissionType as PbPermissionType};
use firebreak_auth::{AuthCommand, AuthInfo, KeyPermission, PermissionType};
use firebreak_raft::Node;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Status};

use crate::concurrency::{unary, unimplemented};
use crate::convert;
use crate::identity::ClientCommonName;
use crate::status::to_status;

/// The credentials a request came with, before they are resolved.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub token: Option<String>,
    pub common_name: Option<String>,
}

impl Credentials {
    /// The credentials of `request`.
    pub fn of<T>(request: &Request<T>) -> Credentials {
        let md = request.metadata();
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).to_owned());
        let common_name = request.extensions().get::<ClientCommonName>().map(|cn| cn.0.clone());
        Credentials { token, common_name }
    }
}

/// Who a request with `creds` is made by (nobody, with none or while auth
/// is disabled); an invalid token is refused as etcd refuses it.
pub async fn caller(node: &Node, creds: &Credentials) -> Result<AuthInfo, Status> {
    if creds.token.is_none() && creds.common_name.is_none() {
        return Ok(AuthInfo::anonymous());
    }
    node.auth_info(creds.token.as_deref(), creds.common_name.as_deref())
        .await
        .map_err(to_status)
}

/// [`caller`] of a request.
pub async fn caller_of<T>(node: &Node, request: &Request<T>) -> Result<AuthInfo, Status> {
    caller(node, &Credentials::of(request)).await
}

/// `etcdserverpb.AuthStatusRequest`: `etcd-client` generates it but does
/// not export it, so it is declared here from etcd's `rpc.proto` (as are
/// its response and the routing of the whole service, see
/// [`crate::concurrency`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthStatusRequest {}

/// `etcdserverpb.AuthStatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(bool, tag = "2")]
    pub enabled: bool,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

/// `etcdserverpb.Auth`, routed by hand (see [`AuthStatusRequest`]).
#[derive(Clone)]
pub struct AuthServer {
    service: Arc<AuthService>,
}

impl AuthServer {
    pub fn new(node: Arc<Node>) -> Self {
        AuthServer {
            service: Arc::new(AuthService { node }),
        }
    }
}

impl NamedService for AuthServer {
    const NAME: &'static str = "etcdserverpb.Auth";
}

/// Routes `/etcdserverpb.Auth/<method>` to `AuthService::<handler>`.
macro_rules! route {
    ($path:expr, $svc:expr, $req:expr, { $($method:literal => $handler:ident,)* }) => {
        match $path {
            $(
                concat!("/etcdserverpb.Auth/", $method) => {
                    let svc = $svc.clone();
                    unary(move |r, creds| {
                        let svc = svc.clone();
                        async move { svc.$handler(r, creds).await }
                    }, $req)
                }
            )*
            _ => Box::pin(async { Ok(unimplemented()) }),
        }
    };
}

impl<B> Service<http::Request<B>> for AuthServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        route!(path.as_str(), self.service, req, {
            "AuthEnable" => auth_enable,
            "AuthDisable" => auth_disable,
            "AuthStatus" => auth_status,
            "Authenticate" => authenticate,
            "UserAdd" => user_add,
            "UserGet" => user_get,
            "UserList" => user_list,
            "UserDelete" => user_delete,
            "UserChangePassword" => user_change_password,
            "UserGrantRole" => user_grant_role,
            "UserRevokeRole" => user_revoke_role,
            "RoleAdd" => role_add,
            "RoleGet" => role_get,
            "RoleList" => role_list,
            "RoleDelete" => role_delete,
            "RoleGrantPermission" => role_grant_permission,
            "RoleRevokePermission" => role_revoke_permission,
        })
    }
}

/// The methods of `etcdserverpb.Auth`.
pub struct AuthService {
    node: Arc<Node>,
}

impl AuthService {
    fn header(&self) -> Option<PbResponseHeader> {
        convert::header(self.node.current_header())
    }

    /// Runs an auth change for the caller with `creds`.
    async fn change(&self, creds: &Credentials, cmd: AuthCommand) -> Result<(), Status> {
        let who = caller(&self.node, creds).await?;
        self.node.auth_write(&who, cmd).await.map_err(to_status)?;
        Ok(())
    }

    async fn auth_enable(&self, _r: PbAuthEnableRequest, creds: Credentials) -> Result<PbAuthEnableResponse, Status> {
        self.change(&creds, AuthCommand::Enable).await?;
        Ok(PbAuthEnableResponse { header: self.header() })
    }

    async fn auth_disable(
        &self,
        _r: PbAuthDisableRequest,
        creds: Credentials,
    ) -> Result<PbAuthDisableResponse, Status> {
        self.change(&creds, AuthCommand::Disable).await?;
        Ok(PbAuthDisableResponse { header: self.header() })
    }

    async fn auth_status(&self, _r: AuthStatusRequest, creds: Credentials) -> Result<AuthStatusResponse, Status> {
        let who = caller(&self.node, &creds).await?;
        let (enabled, auth_revision) = self.node.auth_status(&who).await.map_err(to_status)?;
        Ok(AuthStatusResponse {
            header: self.header(),
            enabled,
            auth_revision,
        })
    }

    async fn authenticate(
        &self,
        r: PbAuthenticateRequest,
        _creds: Credentials,
    ) -> Result<PbAuthenticateResponse, Status> {
        // No credentials are looked at: this is how they are obtained.

        let token = self.node.authenticate(&r.name, &r.password).await.map_err(to_status)?;
        Ok(PbAuthenticateResponse {
            header: self.header(),
            token,
        })
    }

    async fn user_add(&self, r: PbAuthUserAddRequest, creds: Credentials) -> Result<PbAuthUserAddResponse, Status> {
        let who = caller(&self.node, &creds).await?;

        let no_password = r.options.is_some_and(|o| o.no_password);
        self.node
            .user_add(&who, &r.name, &r.password, no_password)
            .await
            .map_err(to_status)?;
        Ok(PbAuthUserAddResponse { header: self.header() })
    }

    async fn user_get(&self, r: PbAuthUserGetRequest, creds: Credentials) -> Result<PbAuthUserGetResponse, Status> {
        let who = caller(&self.node, &creds).await?;
        let roles = self.node.user_get(&who, &r.name).await.map_err(to_status)?;
        Ok(PbAuthUserGetResponse {
            header: self.header(),
            roles,
        })
    }

    async fn user_list(&self, _r: PbAuthUserListRequest, creds: Credentials) -> Result<PbAuthUserListResponse, Status> {
        let who = caller(&self.node, &creds).await?;
        let users = self.node.user_list(&who).await.map_err(to_status)?;
        Ok(PbAuthUserListResponse {
            header: self.header(),
            users,
        })
    }

    async fn user_delete(
        &self,
        r: PbAuthUserDeleteRequest,
        creds: Credentials,
    ) -> Result<PbAuthUserDeleteResponse, Status> {
        let name = r.name.clone();
        self.change(&creds, AuthCommand::UserDelete { name }).await?;
        Ok(PbAuthUserDeleteResponse { header: self.header() })
    }

    async fn user_change_password(
        &self,
        r: PbAuthUserChangePasswordRequest,
        creds: Credentials,
    ) -> Result<PbAuthUserChangePasswordResponse, Status> {
        let who = caller(&self.node, &creds).await?;

        self.node
            .user_change_password(&who, &r.name, &r.password)
            .await
            .map_err(to_status)?;
        Ok(PbAuthUserChangePasswordResponse { header: self.header() })
    }

    async fn user_grant_role(
        &self,
        r: PbAuthUserGrantRoleRequest,
        creds: Credentials,
    ) -> Result<PbAuthUserGrantRoleResponse, Status> {
        let (user, role) = (r.user.clone(), r.role.clone());
        self.change(&creds, AuthCommand::UserGrantRole { user, role }).await?;
        Ok(PbAuthUserGrantRoleResponse { header: self.header() })
    }

    async fn user_revoke_role(
        &self,
        r: PbAuthUserRevokeRoleRequest,
        creds: Credentials,
    ) -> Result<PbAuthUserRevokeRoleResponse, Status> {
        let (name, role) = (r.name.clone(), r.role.clone());
        self.change(&creds, AuthCommand::UserRevokeRole { name, role }).await?;
        Ok(PbAuthUserRevokeRoleResponse { header: self.header() })
    }

    async fn role_add(&self, r: PbAuthRoleAddRequest, creds: Credentials) -> Result<PbAuthRoleAddResponse, Status> {
        let name = r.name.clone();
        self.change(&creds, AuthCommand::RoleAdd { name }).await?;
        Ok(PbAuthRoleAddResponse { header: self.header() })
    }

    async fn role_get(&self, r: PbAuthRoleGetRequest, creds: Credentials) -> Result<PbAuthRoleGetResponse, Status> {
        let who = caller(&self.node, &creds).await?;
        let perms = self.node.role_get(&who, &r.role).await.map_err(to_status)?;
        let codes: Vec<i32> = perms.iter().map(|p| p.perm.code()).collect();
        let mut resp = PbAuthRoleGetResponse {
            header: self.header(),
            perm: perms
                .into_iter()
                .map(|p| {
                    Permission::new(PbPermissionType::Read, p.key)
                        .with_range_end(p.range_end)
                        .into()
                })
                .collect(),
        };
        // The type as stored, also a number etcd does not name.
        for (perm, code) in resp.perm.iter_mut().zip(codes) {
            perm.perm_type = code;
        }
        Ok(resp)
    }

    async fn role_list(&self, _r: PbAuthRoleListRequest, creds: Credentials) -> Result<PbAuthRoleListResponse, Status> {
        let who = caller(&self.node, &creds).await?;
        let roles = self.node.role_list(&who).await.map_err(to_status)?;
        Ok(PbAuthRoleListResponse {
            header: self.header(),
            roles,
        })
    }

    async fn role_delete(
        &self,
        r: PbAuthRoleDeleteRequest,
        creds: Credentials,
    ) -> Result<PbAuthRoleDeleteResponse, Status> {
        let role = r.role.clone();
        self.change(&creds, AuthCommand::RoleDelete { role }).await?;
        Ok(PbAuthRoleDeleteResponse { header: self.header() })
    }

    async fn role_grant_permission(
        &self,
        r: PbAuthRoleGrantPermissionRequest,
        creds: Credentials,
    ) -> Result<PbAuthRoleGrantPermissionResponse, Status> {
        let name = r.name.clone();
        let perm = r.perm.as_ref().map(|p| {
            let p = Permission::from(p);
            KeyPermission {
                perm: PermissionType::from_code(p.get_type()),
                key: p.key().to_vec(),
                range_end: p.range_end().to_vec(),
            }
        });
        self.change(&creds, AuthCommand::RoleGrantPermission { name, perm })
            .await?;
        Ok(PbAuthRoleGrantPermissionResponse { header: self.header() })
    }

    async fn role_revoke_permission(
        &self,
        r: PbAuthRoleRevokePermissionRequest,
        creds: Credentials,
    ) -> Result<PbAuthRoleRevokePermissionResponse, Status> {
        let cmd = AuthCommand::RoleRevokePermission {
            role: r.role.clone(),
            key: r.key.clone(),
            range_end: r.range_end.clone(),
        };
        self.change(&creds, cmd).await?;
        Ok(PbAuthRoleRevokePermissionResponse { header: self.header() })
    }
}
