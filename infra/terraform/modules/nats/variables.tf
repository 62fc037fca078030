variable "name" {
  type        = string
  description = "Helm release name; also the chart's fullnameOverride, so the client Service is <name>.<namespace>.svc."
  default     = "nats"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name must be a DNS label of 2-42 characters."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace to install into (must exist)."
}

variable "tls_secret_name" {
  type        = string
  description = "Kubernetes Secret of type kubernetes.io/tls with ca.crt (as cert-manager writes it): the server certificate of the client port (DNS names in output certificate_dns_names) and the CA that every client certificate must chain to."
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.tls_secret_name)) && length(var.tls_secret_name) <= 253
    error_message = "tls_secret_name must be a Kubernetes object name."
  }
}

variable "trust_domain" {
  type        = string
  description = "SPIFFE trust domain of the principals' certificates: principal service:ingest is user spiffe://<trust_domain>/service/ingest."
  default     = "fraud.local"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.trust_domain))
    error_message = "trust_domain must be a lower-case DNS-like name such as fraud.local."
  }
}

variable "chart_version" {
  type        = string
  description = "Exact version of the nats chart (https://nats-io.github.io/k8s/helm/charts/); pinned so an apply never upgrades NATS by surprise."
  default     = "2.14.2"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be an exact version such as 2.14.2."
  }
}

variable "replicas" {
  type        = number
  description = "NATS servers in the JetStream cluster: 3 (or 5) for an R3 quorum; 1 runs a single server without clustering."
  default     = 3
  validation {
    condition     = var.replicas == 1 || (var.replicas >= 3 && floor(var.replicas) == var.replicas)
    error_message = "replicas must be 1 or a whole number >= 3 (a 2-node JetStream cluster has no fault tolerance)."
  }
}

variable "file_storage_size" {
  type        = string
  description = "Size of each server's JetStream file-storage PVC (also its max_file_store)."
  default     = "10Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.file_storage_size))
    error_message = "file_storage_size must be a quantity such as 10Gi."
  }
}

variable "storage_class_name" {
  type        = string
  description = "StorageClass of the JetStream PVCs; null uses the cluster default."
  default     = null
}

variable "resources" {
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  description = "Resources of the nats-server container."
  default = {
    requests = { cpu = "500m", memory = "1Gi" }
    limits   = { cpu = "2", memory = "2Gi" }
  }
  validation {
    condition     = contains(keys(var.resources.limits), "memory")
    error_message = "resources.limits must set memory (nats-server sizes GOMEMLIMIT-like buffers from it)."
  }
}

variable "topology_spread_when_unsatisfiable" {
  type        = string
  description = "One NATS server per node: DoNotSchedule enforces it (needs >= replicas nodes), ScheduleAnyway only prefers it (small dev clusters)."
  default     = "DoNotSchedule"
  validation {
    condition     = contains(["DoNotSchedule", "ScheduleAnyway"], var.topology_spread_when_unsatisfiable)
    error_message = "topology_spread_when_unsatisfiable must be DoNotSchedule or ScheduleAnyway."
  }
}

variable "enable_prometheus_exporter" {
  type        = bool
  description = "Run prometheus-nats-exporter beside each server (port 7777) and annotate the pods for scraping."
  default     = true
}

variable "enable_nats_box" {
  type        = bool
  description = "Deploy the nats-box toolbox (nats CLI) for operators."
  default     = false
}

variable "run_as_user" {
  type        = number
  description = "Non-root UID/GID for the NATS pods (nats-server needs no privileges)."
  default     = 1000
  validation {
    condition     = var.run_as_user > 0
    error_message = "run_as_user must not be 0 (root)."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "How long helm waits for the release to become ready."
  default     = 600
}

variable "extra_values" {
  type        = list(string)
  description = "Further chart values as YAML documents, applied after the module's (e.g. a leafnode or gateway block)."
  default     = []
}

variable "cluster_domain" {
  type        = string
  description = "Cluster DNS domain used in the client_url output."
  default     = "cluster.local"
}
