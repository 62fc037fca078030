variable "name" {
  type        = string
  description = "Name of the Deployment, Service and (created) model repository claim."
  default     = "triton"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name must be a DNS label of 2-42 characters."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace to deploy into (must exist)."
}

variable "image" {
  type        = string
  description = "Triton Inference Server image (NVIDIA's full image has the onnxruntime backend the cluster models use)."
  default     = "nvcr.io/nvidia/tritonserver:24.08-py3"
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

variable "replicas" {
  type        = number
  description = "Triton pods. Models are loaded explicitly by governance through the Service, i.e. into one pod: keep 1 until governance loads into every pod."
  default     = 1
  validation {
    condition     = var.replicas >= 1 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number >= 1."
  }
}

variable "resources" {
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  description = "CPU/memory requests and limits of the Triton container (GPUs: see gpu_count)."
  default = {
    requests = { cpu = "2", memory = "4Gi" }
    limits   = { cpu = "4", memory = "8Gi" }
  }
  validation {
    condition     = contains(keys(var.resources.limits), "memory") && contains(keys(var.resources.limits), "cpu")
    error_message = "resources.limits must set cpu and memory."
  }
}

variable "gpu_count" {
  type        = number
  description = "NVIDIA GPUs per pod (limit nvidia.com/gpu; needs the NVIDIA device plugin); 0 runs on CPU."
  default     = 0
  validation {
    condition     = var.gpu_count >= 0 && floor(var.gpu_count) == var.gpu_count
    error_message = "gpu_count must be a whole number >= 0."
  }
}

variable "shm_size" {
  type        = string
  description = "Size of the in-memory /dev/shm volume Triton uses for shared-memory transfers."
  default     = "1Gi"
}

variable "model_repository_claim_name" {
  type        = string
  description = "Existing PersistentVolumeClaim holding the model repository; null creates one. Governance mounts the same claim and writes the models."
  default     = null
}

variable "model_repository_size" {
  type        = string
  description = "Size of the created model repository claim."
  default     = "10Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.model_repository_size))
    error_message = "model_repository_size must be a quantity such as 10Gi."
  }
}

variable "model_repository_storage_class" {
  type        = string
  description = "StorageClass of the created claim; it must support model_repository_access_modes (ReadWriteMany: NFS, EFS, Filestore, CephFS...). null uses the cluster default."
  default     = null
}

variable "model_repository_access_modes" {
  type        = list(string)
  description = "Access modes of the created claim. ReadWriteMany lets governance and Triton pods on different nodes share it."
  default     = ["ReadWriteMany"]
  validation {
    condition     = length(var.model_repository_access_modes) > 0 && alltrue([for m in var.model_repository_access_modes : contains(["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"], m)])
    error_message = "model_repository_access_modes must be Kubernetes access modes."
  }
}

variable "extra_args" {
  type        = list(string)
  description = "Extra tritonserver arguments, e.g. [\"--log-verbose=1\"]."
  default     = []
}

variable "read_only_root_filesystem" {
  type        = bool
  description = "Run with a read-only root filesystem (/tmp and /dev/shm are writable emptyDirs)."
  default     = true
}

variable "run_as_user" {
  type        = number
  description = "Non-root UID/GID: 1000 is the triton-server user of NVIDIA's images."
  default     = 1000
  validation {
    condition     = var.run_as_user > 0
    error_message = "run_as_user must not be 0 (root)."
  }
}

variable "fs_group" {
  type        = number
  description = "Pod fsGroup; use the fraud-service modules' fs_group so Triton can read what governance writes."
  default     = 10001
}

variable "node_selector" {
  type        = map(string)
  description = "Node selector (e.g. a GPU node pool)."
  default     = {}
}

variable "tolerations" {
  type = list(object({
    key      = string
    operator = optional(string, "Equal")
    value    = optional(string)
    effect   = optional(string)
  }))
  description = "Tolerations (e.g. for tainted GPU nodes: { key = \"nvidia.com/gpu\", operator = \"Exists\", effect = \"NoSchedule\" })."
  default     = []
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every object."
  default     = {}
}

variable "cluster_domain" {
  type        = string
  description = "Cluster DNS domain used in the address outputs."
  default     = "cluster.local"
}

variable "admin_key_secret_name" {
  type        = string
  description = "Existing Secret (key \"admin-key\": 16-256 of A-Z a-z 0-9 _ -) holding Triton's admin key for model management; null creates one with a random key. Mount the same Secret into governance (FRAUD_TRITON_ADMIN_KEY_FILE)."
  default     = null
}

variable "network_policy" {
  type        = bool
  description = "Create the NetworkPolicy that admits only allowed_clients to gRPC and metrics scrapers to the metrics port."
  default     = true
}

variable "allowed_clients" {
  type        = list(string)
  description = "app.kubernetes.io/name of the fraud-platform pods (same namespace) that may reach Triton's gRPC port: scoring infers, governance manages models."
  default     = ["scoring", "governance"]
  validation {
    condition     = length(var.allowed_clients) > 0 && alltrue([for c in var.allowed_clients : can(regex("^[a-z][a-z0-9-]*$", c))])
    error_message = "allowed_clients must be a non-empty list of service names."
  }
}

variable "metrics_namespace_labels" {
  type        = map(string)
  description = "Labels of the namespaces whose pods may scrape the metrics port (e.g. { \"kubernetes.io/metadata.name\" = \"monitoring\" }); {} admits every namespace."
  default     = {}
}
