{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "kubetask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* `<release>-<chart>`, or the release name alone when it already contains the chart name. */}}
{{- define "kubetask.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object names of the components; suffixes stay readable because fullname is cut to 45 (`-operator-metrics` still fits in 63). */}}
{{- define "kubetask.operator.fullname" -}}
{{- printf "%s-operator" (include "kubetask.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}
{{- define "kubetask.gateway.fullname" -}}
{{- printf "%s-gateway" (include "kubetask.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{- define "kubetask.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "kubetask.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubetask.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "kubetask.gateway.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------- */}}

{{- define "kubetask.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubetask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetask
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "kubetask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetask.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubetask.componentLabels" -}}
{{ include "kubetask.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image reference: registry/repository, then @digest or :tag (default appVersion). */}}
{{- define "kubetask.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces ------------------------------------------------------------------------- */}}

{{/*
Namespaces a per-namespace object goes to: the given list, else watchNamespaces, else the
release namespace. Call with (dict "ctx" $ "namespaces" .Values.x.namespaces); returns JSON.
*/}}
{{- define "kubetask.targetNamespaces" -}}
{{- $list := .namespaces -}}
{{- if not $list -}}{{- $list = .ctx.Values.watchNamespaces -}}{{- end -}}
{{- if not $list -}}{{- $list = list .ctx.Release.Namespace -}}{{- end -}}
{{- $list | uniq | toJson -}}
{{- end -}}

{{/*
Custom resources (TaskQueue, TaskType) cannot be in the same Helm manifest as CRDs the cluster
does not know yet: Helm maps every kind before it creates anything ("ensure CRDs are installed
first"). While the API server lacks kubetask.io/v1alpha1, they are post-install/post-upgrade
hooks (created after the CRDs) that carry Helm's ownership metadata, so the next upgrade, which
renders them as ordinary objects, adopts them into the release.
*/}}
{{- define "kubetask.crHookAnnotations" -}}
{{- if not (.Capabilities.APIVersions.Has "kubetask.io/v1alpha1/TaskQueue") -}}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-weight: "0"
helm.sh/hook-delete-policy: before-hook-creation
meta.helm.sh/release-name: {{ .Release.Name }}
meta.helm.sh/release-namespace: {{ .Release.Namespace }}
{{- end -}}
{{- end -}}

{{/* Operator RBAC rules in a watched namespace (or cluster-wide). */}}
{{- define "kubetask.operator.namespacedRules" -}}
# Tasks: read; created by TaskSchedules, cancelled by their Replace policy (patch spec.cancel),
# and deleted by retention and by schedules' history limits. Otherwise only their status is written.
- apiGroups: [kubetask.io]
  resources: [tasks]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [kubetask.io]
  resources: [tasks/status]
  verbs: [get, patch]
- apiGroups: [kubetask.io]
  resources: [tasktypes]
  verbs: [get, list, watch]
- apiGroups: [kubetask.io]
  resources: [taskqueues]
  verbs: [get, list, watch]
- apiGroups: [kubetask.io]
  resources: [taskqueues/status]
  verbs: [get, patch]
- apiGroups: [kubetask.io]
  resources: [taskschedules]
  verbs: [get, list, watch]
- apiGroups: [kubetask.io]
  resources: [taskschedules/status]
  verbs: [get, patch]
- apiGroups: [kubetask.io]
  resources: [taskgroups]
  verbs: [get, list, watch]
- apiGroups: [kubetask.io]
  resources: [taskgroups/status]
  verbs: [get, patch]
# TaskWebhooks: read; their status says whether the Secret holds the key (Ready) and who names them.
- apiGroups: [kubetask.io]
  resources: [taskwebhooks]
  verbs: [get, list, watch]
- apiGroups: [kubetask.io]
  resources: [taskwebhooks/status]
  verbs: [get, patch]
# A TaskWebhook's signing key: the one Secret it names, read by name. Never list or watch: that
# would hand the operator every Secret of the namespace.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# One Job per Task run (deterministic name); deleted on cancel.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# A fan-out's items (spec.items): one ConfigMap per run, created before its Job and mounted by its
# pods; never read back (a 409 means an earlier attempt created it), deleted with the Task (owner).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
# Handler pods are listed, never watched: a finished Job's pods once (result, exit code), and
# Pending pods while a Job has no ready pod (scheduling problems).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Kopf posts v1 Events on Tasks.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* What every Kopf operator reads cluster-wide: CRDs (resource discovery) and namespaces. */}}
{{- define "kubetask.operator.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end -}}

{{/* Gateway RBAC rules in a served namespace (or cluster-wide). */}}
{{- define "kubetask.gateway.namespacedRules" -}}
# Submit (create), cancel and rerun (patch the spec), read and watch (the cache). Never delete.
- apiGroups: [kubetask.io]
  resources: [tasks]
  verbs: [get, list, watch, create, patch]
- apiGroups: [kubetask.io]
  resources: [tasktypes, taskqueues]
  verbs: [get, list, watch]
# TaskSchedules are read live (no watch): read, create, suspend and resume (patch spec.suspend).
# "Trigger now" reads the schedule and creates a Task (the tasks rule above). Never delete.
- apiGroups: [kubetask.io]
  resources: [taskschedules]
  verbs: [get, list, create, patch]
# A submission naming spec.webhook: the TaskWebhook's Ready condition, read by name. Never Secrets.
- apiGroups: [kubetask.io]
  resources: [taskwebhooks]
  verbs: [get]
# TaskGroups are read live (no watch) and created (empty, or a batch's group before its members).
# The operator writes their status; the gateway never patches or deletes them.
- apiGroups: [kubetask.io]
  resources: [taskgroups]
  verbs: [get, list, create]
# A Task's pods and their logs.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}

{{/* The gateway asks the API server who a caller is and what they may do. */}}
{{- define "kubetask.gateway.clusterRules" -}}
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end -}}
