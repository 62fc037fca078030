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

output "certificate_dns_names" {
  description = "DNS names the service's certificate (tls_secret_name) must carry for its peers to verify it, besides IP SAN 127.0.0.1 for the probes."
  # From the inputs alone (known at plan time, so a cert-manager Certificate can be planned before the Service).
  value = [
    "fraud-${var.name}",
    "fraud-${var.name}.${var.namespace}",
    "fraud-${var.name}.${var.namespace}.svc",
    "fraud-${var.name}.${var.namespace}.svc.${var.cluster_domain}",
  ]
}

output "spiffe_id" {
  description = "The principal the service's certificate must name as URI SAN (spiffe://<trust_domain>/service/<name>)."
  value       = "spiffe://${var.trust_domain}/service/${var.name}"
}
