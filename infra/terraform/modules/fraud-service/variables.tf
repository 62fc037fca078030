variable "name" {
  type        = string
  description = "Service name as the code knows it (ingest, features, scoring, governance, monitor): runs `python -m services.<name>` and names every Kubernetes object."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name must be a DNS label of 2-42 characters: lower-case letters, digits and '-'."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace to deploy into (must exist)."
}

variable "image" {
  type        = string
  description = "Container image of the platform (services/, fraudshared/ and generated code), e.g. registry.example.com/fraud-platform:1.4.0. Pin a tag or digest."
  validation {
    condition     = length(trimspace(var.image)) > 0 && !endswith(var.image, ":latest")
    error_message = "image must be set and must not use the mutable :latest tag."
  }
}

variable "image_pull_policy" {
  type        = string
  description = "Kubernetes image pull policy."
  default     = "IfNotPresent"
  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image_pull_policy)
    error_message = "image_pull_policy must be Always, IfNotPresent or Never."
  }
}

variable "command" {
  type        = list(string)
  description = "Container command; null runs `python -m services.<name>`."
  default     = null
}

variable "replicas" {
  type        = number
  description = "Pod replicas when autoscaling is off (with autoscaling the HPA owns the count)."
  default     = 2
  validation {
    condition     = var.replicas >= 1 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number >= 1."
  }
}

variable "deployment_strategy" {
  type        = string
  description = "RollingUpdate, or Recreate for a service whose state must have a single owner (features owns its card partitions: two pods owning the same partitions would diverge)."
  default     = "RollingUpdate"
  validation {
    condition     = contains(["RollingUpdate", "Recreate"], var.deployment_strategy)
    error_message = "deployment_strategy must be RollingUpdate or Recreate."
  }
}

variable "grpc_port" {
  type        = number
  description = "gRPC port (FRAUD_<SERVICE>_GRPC_PORT); serves the service, grpc.health.v1 (used by the probes) and reflection."
  default     = 50051
  validation {
    condition     = var.grpc_port >= 1 && var.grpc_port <= 65535 && floor(var.grpc_port) == var.grpc_port
    error_message = "grpc_port must be a TCP port in 1..65535."
  }
}

variable "metrics_port" {
  type        = number
  description = "Prometheus /metrics port (FRAUD_<SERVICE>_METRICS_PORT); must differ from grpc_port."
  default     = 9464
  validation {
    condition     = var.metrics_port >= 1 && var.metrics_port <= 65535 && floor(var.metrics_port) == var.metrics_port
    error_message = "metrics_port must be a TCP port in 1..65535."
  }
}

variable "nats_url" {
  type        = string
  description = "NATS URL(s), comma-separated (FRAUD_NATS_URL), e.g. the nats module's client_url: tls:// only, since nats-server requires the service's certificate and maps its SPIFFE id to the service's permissions."
  validation {
    condition     = alltrue([for u in split(",", var.nats_url) : can(regex("^tls://[^/,]+$", trimspace(u)))])
    error_message = "nats_url must be tls://host:port URL(s): the services present their certificate to NATS over TLS."
  }
}

variable "tls_secret_name" {
  type        = string
  description = "Kubernetes Secret of type kubernetes.io/tls with ca.crt (as cert-manager writes it) holding the service's own certificate: URI SAN spiffe://<trust_domain>/service/<name>, serverAuth and clientAuth, DNS SANs of its Service (output certificate_dns_names) and IP SAN 127.0.0.1 (the probes). Mounted read-only at tls_mount_path."
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.tls_secret_name)) && length(var.tls_secret_name) <= 253
    error_message = "tls_secret_name must be a Kubernetes object name."
  }
}

variable "tls_mount_path" {
  type        = string
  description = "Where the TLS Secret is mounted: FRAUD_TLS_CA_FILE, FRAUD_<SERVICE>_TLS_CERT_FILE and FRAUD_<SERVICE>_TLS_KEY_FILE are <path>/ca.crt, tls.crt and tls.key."
  default     = "/etc/fraud/tls"
  validation {
    condition     = startswith(var.tls_mount_path, "/") && !endswith(var.tls_mount_path, "/")
    error_message = "tls_mount_path must be an absolute path without a trailing /."
  }
}

variable "trust_domain" {
  type        = string
  description = "SPIFFE trust domain of the platform's certificates (FRAUD_TRUST_DOMAIN); the same in every service and in the nats module."
  default     = "fraud.local"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.trust_domain))
    error_message = "trust_domain must be a lower-case DNS-like name such as fraud.local."
  }
}

variable "secret_volumes" {
  type = map(object({
    secret_name = string
    mount_path  = string
  }))
  description = "Kubernetes Secrets mounted read-only as files (mode 0400, group fs_group), by volume name: volume => { secret_name, mount_path }; each key of the Secret becomes <mount_path>/<key> (e.g. governance's Triton admin key for FRAUD_TRITON_ADMIN_KEY_FILE)."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.secret_volumes : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", k)) && startswith(v.mount_path, "/")])
    error_message = "secret_volumes keys must be DNS labels and every mount_path absolute."
  }
}

variable "log_level" {
  type        = string
  description = "FRAUD_LOG_LEVEL."
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "otlp_endpoint" {
  type        = string
  description = "OTLP gRPC endpoint for traces (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://jaeger-collector.observability:4317; empty turns export off."
  default     = ""
}

variable "vault_addr" {
  type        = string
  description = "Vault address (VAULT_ADDR); empty leaves the service without Vault (it would then fall back to a development secrets file, which is not for clusters)."
  default     = ""
}

variable "vault_approle_secret_name" {
  type        = string
  description = "Name of a Kubernetes Secret in the namespace with keys role_id and secret_id, exposed as VAULT_ROLE_ID / VAULT_SECRET_ID; null for none."
  default     = null
}

variable "env" {
  type        = map(string)
  description = "Service-specific environment (names exactly as the service reads them, see docs/config.md), e.g. { FRAUD_FEATURES_ADDR = module.features.address }. No secrets here: use secret_env."
  default     = {}
}

variable "secret_env" {
  type = map(object({
    secret_name = string
    key         = string
  }))
  description = "Environment variables read from Kubernetes Secrets: variable name => { secret_name, key }."
  default     = {}
}

variable "volumes" {
  type = map(object({
    claim_name = string
    mount_path = string
    read_only  = optional(bool, false)
  }))
  description = "PersistentVolumeClaims to mount, by volume name (e.g. governance's Triton model repository and artifact store)."
  default     = {}
}

variable "var_dir" {
  type        = string
  description = "FRAUD_VAR_DIR: local state directory, mounted as an emptyDir because the root filesystem is read-only."
  default     = "/var/lib/fraud"
}

variable "resources" {
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  description = "Container resource requests and limits (cpu, memory)."
  default = {
    requests = { cpu = "250m", memory = "256Mi" }
    limits   = { cpu = "1", memory = "512Mi" }
  }
  validation {
    condition     = contains(keys(var.resources.limits), "memory") && contains(keys(var.resources.limits), "cpu")
    error_message = "resources.limits must set cpu and memory."
  }
}

variable "autoscaling" {
  type = object({
    min_replicas                      = number
    max_replicas                      = number
    target_cpu_utilization_percentage = optional(number, 70)
  })
  description = "HorizontalPodAutoscaler on CPU; null disables it."
  default     = null
  validation {
    condition = var.autoscaling == null ? true : (
      var.autoscaling.min_replicas >= 1 &&
      var.autoscaling.max_replicas >= var.autoscaling.min_replicas &&
      var.autoscaling.target_cpu_utilization_percentage > 0 &&
      var.autoscaling.target_cpu_utilization_percentage <= 100
    )
    error_message = "autoscaling needs 1 <= min_replicas <= max_replicas and a CPU target in 1..100."
  }
}

variable "pdb_max_unavailable" {
  type        = number
  description = "PodDisruptionBudget maxUnavailable (voluntary disruptions such as node drains)."
  default     = 1
  validation {
    condition     = var.pdb_max_unavailable >= 1 && floor(var.pdb_max_unavailable) == var.pdb_max_unavailable
    error_message = "pdb_max_unavailable must be a whole number >= 1 (0 would block every node drain)."
  }
}

variable "run_as_user" {
  type        = number
  description = "Non-root UID (and GID) the container runs as."
  default     = 10001
  validation {
    condition     = var.run_as_user > 0
    error_message = "run_as_user must not be 0 (root)."
  }
}

variable "fs_group" {
  type        = number
  description = "Pod fsGroup: group owning mounted volumes; use the same value as the triton module so Triton can read the models governance writes."
  default     = 10001
}

variable "termination_grace_period_seconds" {
  type        = number
  description = "Seconds between SIGTERM (graceful gRPC stop, then NATS drain) and SIGKILL."
  default     = 30
  validation {
    condition     = var.termination_grace_period_seconds >= 5
    error_message = "termination_grace_period_seconds must be >= 5."
  }
}

variable "node_selector" {
  type        = map(string)
  description = "Node selector for the pods."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every object."
  default     = {}
}

variable "pod_annotations" {
  type        = map(string)
  description = "Extra pod annotations (the Prometheus scrape annotations are always set)."
  default     = {}
}

variable "service_account_annotations" {
  type        = map(string)
  description = "Annotations for the ServiceAccount (e.g. cloud workload identity)."
  default     = {}
}

variable "cluster_domain" {
  type        = string
  description = "Cluster DNS domain used in the address output."
  default     = "cluster.local"
}
