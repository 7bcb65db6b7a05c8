{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "juju-secrets-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "juju-secrets-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "juju-secrets-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "juju-secrets-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "juju-secrets-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "juju-secrets-operator.labels" -}}
helm.sh/chart: {{ include "juju-secrets-operator.chart" . }}
{{ include "juju-secrets-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "juju-secrets-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "juju-secrets-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the tenancy policy ConfigMap is mounted. */}}
{{- define "juju-secrets-operator.policyDir" -}}
/etc/juju-secrets-operator/tenancy
{{- end }}

{{/* Name of the leader-election Lease in the release namespace. */}}
{{- define "juju-secrets-operator.leaseName" -}}
{{- default (include "juju-secrets-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
API version of PodDisruptionBudget: policy/v1 when the cluster serves it (Helm puts
"policy/v1/PodDisruptionBudget" in .Capabilities.APIVersions when it talks to a cluster, or
when given with --api-versions), or when rendering offline for Kubernetes 1.21 or later
(offline, Helm lists group versions only, and its default KubeVersion is recent);
otherwise policy/v1beta1 (Kubernetes 1.20, e.g. `helm template --kube-version 1.20.0`).
*/}}
{{- define "juju-secrets-operator.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}
