locals {
  approle_mount = var.create_approle_backend ? vault_auth_backend.this[0].path : var.approle_mount
  # Each service's secrets live under its own prefix (FRAUD_VAULT_PATH_PREFIX of the service): no path of
  # one service can be granted to another through the variables.
  path_prefixes = { for name, _ in var.services : name => "${var.path_root}/${name}" }
}

resource "vault_auth_backend" "this" {
  count = var.create_approle_backend ? 1 : 0

  type        = "approle"
  path        = var.approle_mount
  description = "AppRole logins of the fraud platform services"
}

# Read-only on the exact KV v2 data paths under the service's own prefix (no list, no metadata, no write),
# plus create/read/update and permanent delete under the prefixes it manages (ingest's subject keys).
data "vault_policy_document" "this" {
  for_each = var.services

  dynamic "rule" {
    for_each = toset(each.value.read_paths)
    content {
      path         = "${var.kv_mount}/data/${local.path_prefixes[each.key]}/${rule.value}"
      capabilities = ["read"]
      description  = "${each.key} reads ${rule.value}"
    }
  }

  dynamic "rule" {
    for_each = toset(lookup(var.managed_prefixes, each.key, []))
    content {
      path         = "${var.kv_mount}/data/${local.path_prefixes[each.key]}/${rule.value}/*"
      capabilities = ["create", "read", "update"]
      description  = "${each.key} keeps its ${rule.value}"
    }
  }

  dynamic "rule" {
    for_each = toset(lookup(var.managed_prefixes, each.key, []))
    content {
      path         = "${var.kv_mount}/metadata/${local.path_prefixes[each.key]}/${rule.value}/*"
      capabilities = ["delete"]
      description  = "${each.key} destroys its ${rule.value} (every version)"
    }
  }
}

resource "vault_policy" "this" {
  for_each = var.services

  name   = "${var.name_prefix}-${each.key}"
  policy = data.vault_policy_document.this[each.key].hcl
}

resource "vault_approle_auth_backend_role" "this" {
  for_each = var.services

  backend        = local.approle_mount
  role_name      = "${var.name_prefix}-${each.key}"
  token_policies = [vault_policy.this[each.key].name]
  token_type     = "service" # renewable, as the services' renew-self expects
  token_ttl      = var.token_ttl
  token_max_ttl  = var.token_max_ttl

  bind_secret_id        = true
  secret_id_num_uses    = 0 # the services log in again after a failed renewal
  secret_id_ttl         = var.secret_id_ttl
  secret_id_bound_cidrs = var.bound_cidrs
  token_bound_cidrs     = var.bound_cidrs
}

resource "vault_approle_auth_backend_role_secret_id" "this" {
  for_each = var.issue_secret_ids ? var.services : {}

  backend   = local.approle_mount
  role_name = vault_approle_auth_backend_role.this[each.key].role_name
  metadata  = jsonencode({ service = each.key })
}
