{{/* Chart name used in labels: the chart's, or nameOverride. */}}
{{- define "netmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
  Full name of the release's objects: fullnameOverride, else the release name when it already
  contains the chart name, else <release>-<name>. Cluster-scoped objects (webhook configuration,
  ClusterRole and binding, the test namespace) carry it too, so two releases need different
  release names (or fullnameOverrides) to live in one cluster.
*/}}
{{- define "netmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "netmesh.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "netmesh.labels" -}}
app.kubernetes.io/name: {{ include "netmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "netmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "netmesh.serviceAccountName" -}}
{{- default (include "netmesh.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* repository:tag, plus @digest when one is given: the runtime then pulls by digest and the tag
only documents what it is. */}}
{{- define "netmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- with .Values.image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/*
  PromQL label matchers selecting this release's series: the job the chart's ServiceMonitor or
  PodMonitor sets (relabelled to the full name, whichever of the two scrapes) and the namespace.
*/}}
{{- define "netmesh.metricsSelector" -}}
{{- default (printf "job=%q,namespace=%q" (include "netmesh.fullname" .) .Release.Namespace) .Values.metrics.prometheusRule.selector -}}
{{- end -}}

{{/* Name of the Envoy bootstrap ConfigMap the default template mounts. */}}
{{- define "netmesh.envoyBootstrapName" -}}
{{- .Values.envoyBootstrap.configMapName -}}
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
