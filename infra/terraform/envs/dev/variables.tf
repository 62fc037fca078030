variable "kubeconfig_path" {
  type        = string
  description = "Path of the kubeconfig the kubernetes and helm providers use."
  default     = "~/.kube/config"
}

variable "kube_context" {
  type        = string
  description = "kubeconfig context; null uses the current context."
  default     = null
}

variable "namespace" {
  type        = string
  description = "Namespace that holds the whole platform (created here)."
  default     = "fraud-dev"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace must be a DNS label."
  }
}

variable "platform_image" {
  type        = string
  description = "Image of the platform's Python services (one image, `python -m services.<name>`), pinned by tag or digest."
}

variable "service_replicas" {
  type        = map(number)
  description = "Replicas per service. features and monitor keep 1: features owns every card partition (one owner per partition) and monitor's counters are per process."
  default = {
    ingest     = 2
    features   = 1
    scoring    = 2
    governance = 1
    monitor    = 1
  }
  validation {
    condition     = alltrue([for s in ["ingest", "features", "scoring", "governance", "monitor"] : contains(keys(var.service_replicas), s)])
    error_message = "service_replicas needs an entry for ingest, features, scoring, governance and monitor."
  }
  validation {
    condition     = alltrue([for r in values(var.service_replicas) : r >= 1 && floor(r) == r])
    error_message = "Every replica count must be a whole number >= 1."
  }
  validation {
    condition     = lookup(var.service_replicas, "features", 1) == 1
    error_message = "features must run 1 replica until partitions are assigned per pod."
  }
}

variable "log_level" {
  type        = string
  description = "FRAUD_LOG_LEVEL of every service."
  default     = "INFO"
}

variable "otlp_endpoint" {
  type        = string
  description = "OTLP gRPC endpoint for traces (e.g. a Jaeger collector, http://jaeger-collector.observability:4317); empty disables export."
  default     = ""
}

variable "vault_addr" {
  type        = string
  description = "Vault address for the provider and the services (VAULT_ADDR). The provider's token comes from VAULT_TOKEN in the environment of whoever applies."
  validation {
    condition     = can(regex("^https?://", var.vault_addr))
    error_message = "vault_addr must be an http(s) URL."
  }
}

variable "vault_kv_mount" {
  type        = string
  description = "Mount path of the KV v2 engine holding pan-tokenization, audit-signing and governance-db."
  default     = "secret"
}

variable "vault_approle_mount" {
  type        = string
  description = "Mount path of the AppRole auth method."
  default     = "approle"
}

variable "vault_create_approle_backend" {
  type        = bool
  description = "Enable the AppRole auth method (false when it already exists)."
  default     = false
}

variable "vault_bound_cidrs" {
  type        = list(string)
  description = "CIDRs (the cluster's pod CIDR) allowed to log in and use the services' tokens; empty = anywhere."
  default     = []
}

variable "issue_vault_secret_ids" {
  type        = bool
  description = "Issue the AppRole SecretIDs here and store them in Kubernetes Secrets (they then live in the Terraform state). If false, create the Secrets fraud-<service>-vault (keys role_id, secret_id) out of band before applying."
  default     = true
}

variable "nats_chart_version" {
  type        = string
  description = "Version of the nats Helm chart."
  default     = "2.14.2"
}

variable "nats_replicas" {
  type        = number
  description = "NATS servers in the JetStream cluster."
  default     = 3
}

variable "nats_storage_size" {
  type        = string
  description = "JetStream file-storage PVC size per NATS server."
  default     = "10Gi"
}

variable "nats_spread_when_unsatisfiable" {
  type        = string
  description = "DoNotSchedule (one NATS server per node, needs >= nats_replicas nodes) or ScheduleAnyway (small dev clusters)."
  default     = "ScheduleAnyway"
}

variable "storage_class_name" {
  type        = string
  description = "StorageClass for ReadWriteOnce volumes (JetStream, PostgreSQL); null uses the cluster default."
  default     = null
}

variable "shared_storage_class_name" {
  type        = string
  description = "StorageClass supporting ReadWriteMany, for the Triton model repository and governance's artifact store; null uses the cluster default (which must then support ReadWriteMany)."
  default     = null
}

variable "triton_image" {
  type        = string
  description = "Triton Inference Server image."
  default     = "nvcr.io/nvidia/tritonserver:24.08-py3"
}

variable "triton_gpu_count" {
  type        = number
  description = "GPUs for the Triton pod (0 = CPU)."
  default     = 0
}

variable "postgres_mode" {
  type        = string
  description = "in_cluster (a dev StatefulSet) or external (an existing PostgreSQL for the governance registry)."
  default     = "in_cluster"
}

variable "postgres_host" {
  type        = string
  description = "External PostgreSQL host (postgres_mode = external)."
  default     = null
}

variable "postgres_database" {
  type        = string
  description = "Database of the governance registry."
  default     = "fraud"
}

variable "postgres_username" {
  type        = string
  description = "Database role of the governance registry."
  default     = "fraud"
}

variable "postgres_password" {
  type        = string
  description = "Password of the external database role (postgres_mode = external); set with TF_VAR_postgres_password, never in a file."
  default     = null
  sensitive   = true
}

variable "trust_domain" {
  type        = string
  description = "SPIFFE trust domain of the platform's certificates (FRAUD_TRUST_DOMAIN of every service; NATS maps spiffe://<trust_domain>/service/<name> to its users)."
  default     = "fraud.local"
}

variable "cert_manager_issuer" {
  type = object({
    name = string
    kind = optional(string, "ClusterIssuer")
  })
  description = "cert-manager issuer (a CA or Vault issuer, so the Secrets get ca.crt) that issues every certificate here: one per service, bootstrap and NATS, as Secrets fraud-<name>-tls. null: create those kubernetes.io/tls Secrets (tls.crt, tls.key, ca.crt) out of band. cert-manager's CRDs must be installed before planning."
  default     = null
  validation {
    condition     = var.cert_manager_issuer == null ? true : contains(["Issuer", "ClusterIssuer"], var.cert_manager_issuer.kind)
    error_message = "cert_manager_issuer.kind must be Issuer or ClusterIssuer."
  }
}

variable "certificate_duration" {
  type        = string
  description = "Lifetime of the certificates cert-manager issues (Go duration). The services read their certificate at start: roll them out after a renewal (e.g. with a reloader watching the Secrets)."
  default     = "2160h"
}

variable "certificate_renew_before" {
  type        = string
  description = "How long before expiry cert-manager renews a certificate (Go duration)."
  default     = "720h"
}

variable "bootstrap_role_grants" {
  type        = map(string)
  description = "Role grants the bootstrap Job appends as service:bootstrap (principal id => role), e.g. { \"user:alice\" = \"admin\" }: the first admin, who then grants the rest with fraudctl access. Grants already held are skipped."
  default     = {}
  validation {
    condition     = alltrue([for p in keys(var.bootstrap_role_grants) : can(regex("^user:[a-z0-9][a-z0-9._@-]{0,127}$", p))])
    error_message = "bootstrap_role_grants keys must be user principals such as user:alice."
  }
  validation {
    condition = alltrue([
      for r in values(var.bootstrap_role_grants) :
      contains(["scorer", "labeler", "analyst", "model-owner", "approver", "auditor", "privacy-officer", "admin"], r)
    ])
    error_message = "Roles are scorer, labeler, analyst, model-owner, approver, auditor, privacy-officer and admin."
  }
}
