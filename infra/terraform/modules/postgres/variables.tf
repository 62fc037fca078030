variable "mode" {
  type        = string
  description = "external: use an existing PostgreSQL (only a Secret with its URL is created); in_cluster: a single-pod StatefulSet for development."
  default     = "external"
  validation {
    condition     = contains(["external", "in_cluster"], var.mode)
    error_message = "mode must be external or in_cluster."
  }
}

variable "name" {
  type        = string
  description = "Name of the Secret (<name>-credentials) and, in_cluster, of the StatefulSet and Service."
  default     = "postgres"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name must be a DNS label of 2-42 characters."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace (must exist)."
}

variable "host" {
  type        = string
  description = "Hostname of the external database (mode = external); ignored in_cluster."
  default     = null
}

variable "port" {
  type        = number
  description = "PostgreSQL port."
  default     = 5432
  validation {
    condition     = var.port >= 1 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "port must be a TCP port in 1..65535."
  }
}

variable "database" {
  type        = string
  description = "Database name."
  default     = "fraud"
  validation {
    condition     = can(regex("^[a-zA-Z_][a-zA-Z0-9_]{0,62}$", var.database))
    error_message = "database must be a plain PostgreSQL identifier."
  }
}

variable "username" {
  type        = string
  description = "Database role the registry connects as."
  default     = "fraud"
  validation {
    condition     = can(regex("^[a-zA-Z_][a-zA-Z0-9_]{0,62}$", var.username))
    error_message = "username must be a plain PostgreSQL identifier."
  }
}

variable "password" {
  type        = string
  description = "Password of the external database role (mode = external, required there). in_cluster generates one. Pass it via TF_VAR_password or a secrets manager, never in a committed file."
  default     = null
  sensitive   = true
}

variable "ssl_mode" {
  type        = string
  description = "libpq sslmode in the URL; null means verify-full for external and disable in_cluster (pod-to-pod inside the namespace)."
  default     = null
  validation {
    condition     = var.ssl_mode == null ? true : contains(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"], var.ssl_mode)
    error_message = "ssl_mode must be a libpq sslmode."
  }
}

variable "image" {
  type        = string
  description = "PostgreSQL image for in_cluster (Debian-based official image: UID 999)."
  default     = "postgres:16.4-bookworm"
}

variable "storage_size" {
  type        = string
  description = "Data volume size (in_cluster)."
  default     = "5Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.storage_size))
    error_message = "storage_size must be a quantity such as 5Gi."
  }
}

variable "storage_class_name" {
  type        = string
  description = "StorageClass of the data volume (in_cluster); null uses the cluster default."
  default     = null
}

variable "resources" {
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  description = "Resources of the in_cluster PostgreSQL container."
  default = {
    requests = { cpu = "250m", memory = "512Mi" }
    limits   = { cpu = "1", memory = "1Gi" }
  }
  validation {
    condition     = contains(keys(var.resources.limits), "memory") && contains(keys(var.resources.limits), "cpu")
    error_message = "resources.limits must set cpu and memory."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every object."
  default     = {}
}

variable "cluster_domain" {
  type        = string
  description = "Cluster DNS domain used for the in_cluster host."
  default     = "cluster.local"
}
