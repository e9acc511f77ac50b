#!/bin/sh
# Seeds a dev-mode Vault with what Invite Service reads, and gives the service an AppRole
# that may read exactly those paths. Run once by compose's `vault-seed` service; safe to re-run.
#
#   kv/jwt                   secret_key         the platform's JWT secret (HS256)
#   kv/integration-service   telegram_api_id,   Telegram API credentials (shared with the
#                            telegram_api_hash  platform's Integration Service)
#   kv/invite-service/*      this service's own secrets
#
# Needs VAULT_ADDR and VAULT_TOKEN (the dev root token); JWT_SECRET, TELEGRAM_API_ID and
# TELEGRAM_API_HASH are taken from the environment when set.
set -eu

if ! vault secrets list -format=json | grep -q '"kv/"'; then
    vault secrets enable -path=kv -version=2 kv
fi

jwt_secret="${JWT_SECRET:-}"
if [ -z "$jwt_secret" ]; then
    # keep the secret of an earlier run, so tokens already handed out stay valid
    jwt_secret="$(vault kv get -mount=kv -field=secret_key jwt 2>/dev/null || true)"
fi
if [ -z "$jwt_secret" ]; then
    jwt_secret="$(head -c 48 /dev/urandom | base64 | tr -d '\n+/=')"
fi
vault kv put -mount=kv jwt secret_key="$jwt_secret" >/dev/null
vault kv put -mount=kv integration-service \
    telegram_api_id="${TELEGRAM_API_ID:-0}" telegram_api_hash="${TELEGRAM_API_HASH:-unset}" >/dev/null
vault kv put -mount=kv invite-service/config jwt_secret="$jwt_secret" >/dev/null

vault policy write invite-service - <<'POLICY' >/dev/null
path "kv/data/jwt" { capabilities = ["read"] }
path "kv/data/integration-service" { capabilities = ["read"] }
path "kv/data/invite-service/*" { capabilities = ["read"] }
path "kv/metadata/invite-service/*" { capabilities = ["read", "list"] }
POLICY

if ! vault auth list -format=json | grep -q '"approle/"'; then
    vault auth enable approle
fi
vault write auth/approle/role/invite-service \
    token_policies=invite-service token_ttl=1h token_max_ttl=4h secret_id_ttl=0 >/dev/null
vault write auth/approle/role/invite-service/role-id role_id="$INVITE_SERVICE_ROLE_ID" >/dev/null
approle_login() {
    vault write -field=token auth/approle/login \
        role_id="$INVITE_SERVICE_ROLE_ID" secret_id="$INVITE_SERVICE_SECRET_ID" >/dev/null 2>&1
}
if ! approle_login; then
    vault write auth/approle/role/invite-service/custom-secret-id \
        secret_id="$INVITE_SERVICE_SECRET_ID" >/dev/null
fi
# the service logs in exactly like this: prove it works before the replicas start
approle_login

echo "vault seeded: kv/jwt, kv/integration-service, kv/invite-service/config; approle invite-service"
