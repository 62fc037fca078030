output "policy_names" {
  description = "Vault policy name per service."
  value       = { for k, p in vault_policy.this : k => p.name }
}

output "role_names" {
  description = "AppRole role name per service."
  value       = { for k, r in vault_approle_auth_backend_role.this : k => r.role_name }
}

output "role_ids" {
  description = "AppRole RoleID per service (VAULT_ROLE_ID; an identifier, not a secret on its own)."
  value       = { for k, r in vault_approle_auth_backend_role.this : k => r.role_id }
}

output "secret_ids" {
  description = "AppRole SecretID per service (VAULT_SECRET_ID) when issue_secret_ids is true, else empty."
  value       = { for k, s in vault_approle_auth_backend_role_secret_id.this : k => s.secret_id }
  sensitive   = true
}

output "approle_mount" {
  description = "Mount path of the AppRole auth method the roles live in."
  value       = local.approle_mount
}

output "policies" {
  description = "Rendered policy HCL per service, for review."
  value       = { for k, d in data.vault_policy_document.this : k => d.hcl }
}

output "path_prefixes" {
  description = "Secret path prefix per service under kv_mount (the service's FRAUD_VAULT_PATH_PREFIX)."
  value       = local.path_prefixes
}
