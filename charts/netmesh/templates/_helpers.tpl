{{/* Full name of the release's objects: the release name, or <release>-netmesh. */}}
{{- define "netmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "netmesh.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "netmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "netmesh.serviceAccountName" -}}
{{- default (include "netmesh.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "netmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Namespaces never injected: the system ones and the release's own (sorted, as the CLI renders them). */}}
{{- define "netmesh.excludedNamespaces" -}}
{{- $ns := list "kube-node-lease" "kube-public" "kube-system" .Release.Namespace | uniq | sortAlpha -}}
{{- toJson $ns -}}
{{- end -}}

{{/* The Envoy bootstrap (see configmap-envoy.yaml), as YAML. */}}
{{- define "netmesh.envoyBootstrap" -}}
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 9901}
static_resources:
  listeners:
    - name: netmesh_ingress
      address:
        socket_address: {address: 0.0.0.0, port_value: 15001}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: netmesh_ingress
                route_config:
                  virtual_hosts:
                    - name: local
                      domains: ["*"]
                      routes:
                        - match: {prefix: "/"}
                          direct_response:
                            status: 200
                            body: {inline_string: "netmesh envoy sidecar\n"}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{{- end -}}
