output "name" {
  description = "Name of the Deployment, Service, ServiceAccount and PodDisruptionBudget (fraud-<name>)."
  value       = kubernetes_deployment_v1.this.metadata[0].name
}

output "service_name" {
  description = "Name of the ClusterIP Service."
  value       = kubernetes_service_v1.this.metadata[0].name
}

output "address" {
  description = "In-cluster gRPC address host:port, the form peers read (e.g. FRAUD_FEATURES_ADDR)."
  value       = "${kubernetes_service_v1.this.metadata[0].name}.${var.namespace}.svc.${var.cluster_domain}:${var.grpc_port}"
}

output "grpc_port" {
  description = "gRPC port of the Service and container."
  value       = var.grpc_port
}

output "metrics_port" {
  description = "Prometheus metrics port of the Service and container."
  value       = var.metrics_port
}

output "service_account_name" {
  description = "ServiceAccount the pods run as."
  value       = kubernetes_service_account_v1.this.metadata[0].name
}

output "env_names" {
  description = "Names of every environment variable the container gets (plain and from secrets), for review."
  value       = sort(concat(keys(local.env), keys(local.secret_env)))
}
