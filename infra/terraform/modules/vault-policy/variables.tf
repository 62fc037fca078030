variable "services" {
  type = map(object({
    read_paths = list(string)
  }))
  description = "Services that read secrets, and the secret paths each may read, relative to its own prefix <path_root>/<service> under kv_mount (pan-tokenization = secret/fraud/ingest/pan-tokenization). Each gets one policy and one AppRole; services not listed get no Vault identity at all."
  default = {
    ingest     = { read_paths = ["pan-tokenization"] }
    governance = { read_paths = ["audit-signing", "governance-db", "triton-admin"] }
  }
  validation {
    condition     = alltrue([for name in keys(var.services) : can(regex("^[a-z][a-z0-9-]*$", name))])
    error_message = "Service names must be lower-case DNS labels."
  }
  validation {
    # Least privilege: exact paths only, no globs and no parent traversal.
    condition = alltrue(flatten([
      for s in values(var.services) : [
        for p in s.read_paths : can(regex("^[a-z0-9][a-z0-9_/-]*[a-z0-9]$", p)) && !strcontains(p, "..")
      ]
    ]))
    error_message = "read_paths must be exact secret paths such as pan-tokenization (no *, +, .. or leading/trailing /)."
  }
  validation {
    condition     = alltrue([for s in values(var.services) : length(s.read_paths) > 0])
    error_message = "Every listed service needs at least one read path; drop services that read no secrets."
  }
}

variable "path_root" {
  type        = string
  description = "First segment of every service's secret prefix: <path_root>/<service> (the services' default FRAUD_VAULT_PATH_PREFIX is fraud/<service>)."
  default     = "fraud"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_/-]*[a-z0-9]$", var.path_root)) && !strcontains(var.path_root, "..")
    error_message = "path_root must be a plain path such as fraud (no *, +, .. or leading/trailing /)."
  }
}

variable "managed_prefixes" {
  type        = map(list(string))
  description = "Per service, prefixes under its own secret prefix where it creates, reads, updates and permanently deletes secrets (ingest's per-card subject keys: fraud/ingest/subject-keys/*)."
  default = {
    ingest = ["subject-keys"]
  }
  validation {
    condition = alltrue(flatten([
      for prefixes in values(var.managed_prefixes) : [
        for p in prefixes : can(regex("^[a-z0-9][a-z0-9_/-]*[a-z0-9]$", p)) && !strcontains(p, "..")
      ]
    ]))
    error_message = "managed_prefixes must be plain paths such as subject-keys (no *, +, .. or leading/trailing /)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of policy and AppRole role names (<prefix>-<service>), e.g. per environment."
  default     = "fraud"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.name_prefix))
    error_message = "name_prefix must be lower-case letters, digits and '-'."
  }
}

variable "kv_mount" {
  type        = string
  description = "Mount path of the KV v2 engine (VAULT_KV_MOUNT of the services)."
  default     = "secret"
}

variable "approle_mount" {
  type        = string
  description = "Mount path of the AppRole auth method."
  default     = "approle"
}

variable "create_approle_backend" {
  type        = bool
  description = "Enable the AppRole auth method at approle_mount (false when it is already enabled)."
  default     = false
}

variable "token_ttl" {
  type        = number
  description = "TTL in seconds of the tokens the services get at login; they renew (renew-self) before expiry."
  default     = 3600
  validation {
    condition     = var.token_ttl >= 300
    error_message = "token_ttl must be >= 300 s (the services renew 5 minutes before expiry)."
  }
}

variable "token_max_ttl" {
  type        = number
  description = "Maximum token lifetime in seconds; past it the services log in again with their SecretID."
  default     = 86400
  validation {
    condition     = var.token_max_ttl >= 300
    error_message = "token_max_ttl must be >= 300 s."
  }
}

variable "secret_id_ttl" {
  type        = number
  description = "SecretID lifetime in seconds; 0 = no expiry. The services log in again whenever renewal fails, so an expiring SecretID must be rotated (re-issued into the Kubernetes Secret) before it lapses."
  default     = 0
  validation {
    condition     = var.secret_id_ttl >= 0
    error_message = "secret_id_ttl must be >= 0."
  }
}

variable "bound_cidrs" {
  type        = list(string)
  description = "CIDRs (e.g. the cluster's pod CIDR) allowed to log in with a SecretID and to use the tokens; empty = anywhere."
  default     = []
  validation {
    condition     = alltrue([for c in var.bound_cidrs : can(cidrhost(c, 0))])
    error_message = "bound_cidrs must be CIDR blocks."
  }
}

variable "issue_secret_ids" {
  type        = bool
  description = "Also issue one SecretID per role (output secret_ids) so the caller can put it into a Kubernetes Secret. The SecretID is then in the Terraform state: use an encrypted, access-controlled backend, or leave false and deliver SecretIDs out of band."
  default     = false
}
