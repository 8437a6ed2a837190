package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Kubernetes types below are the subset of the API these manifests use,
// with the API's field names. Decoding is strict, so a misspelt or
// misplaced field is an error; a field the manifests start to use must be
// added here (with its name checked against the API reference).

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type typeMeta struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// intOrString is the API's IntOrString: 1883 or "mqtt", 1 or "25%".
type intOrString struct {
	Int   int
	Str   string
	IsStr bool
}

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	switch n.Tag {
	case "!!int":
		i, err := strconv.Atoi(n.Value)
		v.Int = i
		return err
	case "!!str":
		v.Str, v.IsStr = n.Value, true
		return nil
	}
	return fmt.Errorf("line %d: %q is neither an integer nor a string", n.Line, n.Value)
}

func (v intOrString) MarshalYAML() (any, error) {
	if v.IsStr {
		return v.Str, nil
	}
	return v.Int, nil
}

type deployment struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxSurge       intOrString `yaml:"maxSurge"`
				MaxUnavailable intOrString `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
	SecurityContext               struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		RunAsGroup     *int64 `yaml:"runAsGroup"`
		FSGroup        *int64 `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
		Medium    string `yaml:"medium"`
	} `yaml:"emptyDir"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env            []envVar `yaml:"env"`
	ReadinessProbe *probe   `yaml:"readinessProbe"`
	LivenessProbe  *probe   `yaml:"livenessProbe"`
	StartupProbe   *probe   `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		RunAsGroup               *int64 `yaml:"runAsGroup"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name     string `yaml:"name"`
			Key      string `yaml:"key"`
			Optional *bool  `yaml:"optional"`
		} `yaml:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"configMapKeyRef"`
		ResourceFieldRef *struct {
			Resource string `yaml:"resource"`
			Divisor  string `yaml:"divisor"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type service struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Type                  string            `yaml:"type"`
		ExternalTrafficPolicy string            `yaml:"externalTrafficPolicy"`
		ClusterIP             string            `yaml:"clusterIP"`
		Selector              map[string]string `yaml:"selector"`
		Ports                 []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
			NodePort   int         `yaml:"nodePort"`
			Protocol   string      `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type configMap struct {
	typeMeta `yaml:",inline"`
	Data     map[string]string `yaml:"data"`
}

type secret struct {
	typeMeta   `yaml:",inline"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
}

type pdb struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type hpa struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization int    `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
		Behavior map[string]struct {
			StabilizationWindowSeconds int `yaml:"stabilizationWindowSeconds"`
			Policies                   []struct {
				Type          string `yaml:"type"`
				Value         int    `yaml:"value"`
				PeriodSeconds int    `yaml:"periodSeconds"`
			} `yaml:"policies"`
		} `yaml:"behavior"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Namespace  string `yaml:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
	} `yaml:"labels"`
	Resources []string `yaml:"resources"`
	Images    []image  `yaml:"images"`
}

type image struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
}

// kinds are the apiVersion and kind pairs of the manifests, with their types.
var kinds = map[string]func() any{
	"apps/v1 Deployment":                            func() any { return new(deployment) },
	"v1 Service":                                    func() any { return new(service) },
	"v1 ConfigMap":                                  func() any { return new(configMap) },
	"v1 Secret":                                     func() any { return new(secret) },
	"policy/v1 PodDisruptionBudget":                 func() any { return new(pdb) },
	"autoscaling/v2 HorizontalPodAutoscaler":        func() any { return new(hpa) },
	"kustomize.config.k8s.io/v1beta1 Kustomization": func() any { return new(kustomization) },
}

// manifests holds each k8s/*.yaml object by kind, and the file of each.
type manifests struct {
	byKind map[string][]any
	file   map[any]string
}

func loadK8s(t *testing.T) manifests {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	if len(files) == 0 {
		t.Fatal("no k8s/*.yaml")
	}
	m := manifests{byKind: map[string][]any{}, file: map[any]string{}}
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			var raw map[string]any
			if err := doc.Decode(&raw); err != nil {
				t.Fatalf("%s #%d: %v", f, i+1, err)
			}
			kind := fmt.Sprint(raw["apiVersion"], " ", raw["kind"])
			mk, ok := kinds[kind]
			if !ok {
				t.Errorf("%s #%d: unknown apiVersion/kind %q", f, i+1, kind)
				continue
			}
			obj := mk()
			if err := strict(raw, obj); err != nil {
				t.Errorf("%s #%d (%s): %v", f, i+1, kind, err)
				continue
			}
			name := raw["kind"].(string)
			m.byKind[name] = append(m.byKind[name], obj)
			m.file[obj] = f
		}
	}
	return m
}

func one[T any](t *testing.T, m manifests, kind string) T {
	t.Helper()
	objs := m.byKind[kind]
	if len(objs) != 1 {
		t.Fatalf("%d %s manifests, want 1", len(objs), kind)
	}
	return objs[0].(T)
}

// configMapFile is the imqttd config file inside k8s/configmap.yaml.
func configMapFile(t *testing.T) string {
	t.Helper()
	var cm configMap
	if err := yaml.Unmarshal([]byte(readFile(t, "k8s/configmap.yaml")), &cm); err != nil {
		t.Fatal(err)
	}
	text, ok := cm.Data["imqttd.yaml"]
	if !ok {
		t.Fatal("k8s/configmap.yaml has no imqttd.yaml")
	}
	return text
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	m := loadK8s(t)
	flags := imqttdFlags(t)

	for kind, objs := range m.byKind {
		for _, o := range objs {
			if tm, ok := typeMetaOf(o); ok {
				if tm.Metadata.Name == "" {
					t.Errorf("%s: a %s without metadata.name", m.file[o], kind)
				}
				if tm.Metadata.Namespace != "" {
					t.Errorf("%s: %s %s names a namespace; the manifests are namespace-free", m.file[o], kind, tm.Metadata.Name)
				}
			}
		}
	}

	k := one[*kustomization](t, m, "Kustomization")
	for _, r := range k.Resources {
		if !fileExists(filepath.Join("k8s", r)) {
			t.Errorf("kustomization.yaml: resource %s does not exist", r)
		}
	}
	for _, want := range []string{"configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization.yaml does not apply %s", want)
		}
	}
	if slices.Contains(k.Resources, "secret.example.yaml") {
		t.Error("kustomization.yaml applies the example Secret with its placeholders")
	}

	d := one[*deployment](t, m, "Deployment")
	pod := d.Spec.Template.Spec
	labels := d.Spec.Template.Metadata.Labels
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("Deployment replicas = %v, want 3", d.Spec.Replicas)
	}
	if !subset(d.Spec.Selector.MatchLabels, labels) {
		t.Errorf("Deployment selector %v does not match its template's labels %v", d.Spec.Selector.MatchLabels, labels)
	}
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("pod securityContext: want runAsNonRoot and runAsUser 65532 (the image's user)")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.HasPrefix(c.Image, "imqtt/imqttd") || !slices.ContainsFunc(k.Images, func(i image) bool { return i.Name == c.Image }) {
		t.Errorf("image %q is not the one kustomization.yaml's images: sets", c.Image)
	}
	sc := c.SecurityContext
	switch {
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container securityContext: runAsNonRoot is not true")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container securityContext: readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container securityContext: allowPrivilegeEscalation is not false")
	case !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
		t.Error("container securityContext: capabilities must drop ALL and add none")
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no resources.requests.%s", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no resources.limits.memory")
	}

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["mqtt"] != 1883 || ports["http"] != 8080 {
		t.Errorf("container ports %v, want mqtt 1883 and http 8080", ports)
	}
	portOK := func(p intOrString) bool {
		if p.IsStr {
			_, ok := ports[p.Str]
			return ok
		}
		return slices.Contains([]int{ports["mqtt"], ports["http"]}, p.Int) && p.Int != 0
	}
	for name, pr := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[name]
		switch {
		case pr == nil || pr.HTTPGet == nil:
			t.Errorf("no %s.httpGet", name)
		case pr.HTTPGet.Path != want:
			t.Errorf("%s on %s, want %s", name, pr.HTTPGet.Path, want)
		case !(pr.HTTPGet.Port.Str == "http" || pr.HTTPGet.Port.Int == 8080):
			t.Errorf("%s port %+v is not the http port", name, pr.HTTPGet.Port)
		}
	}

	// Environment: only imqttd's names, scale-out identity from the pod.
	env := map[string]envVar{}
	for i, e := range c.Env {
		env[e.Name] = e
		if strings.HasPrefix(e.Name, "IMQTT_") {
			if !slices.ContainsFunc(keys(flags), func(f string) bool { return envOf(f) == e.Name }) {
				t.Errorf("env %s is no imqttd flag", e.Name)
			}
		}
		// $(VAR) refers to a variable defined earlier in the list.
		for _, ref := range varRefRE.FindAllStringSubmatch(e.Value, -1) {
			if !slices.ContainsFunc(c.Env[:i], func(p envVar) bool { return p.Name == ref[1] }) {
				t.Errorf("env %s uses $(%s), which is not defined before it", e.Name, ref[1])
			}
		}
	}
	fieldRef := func(name string) string {
		if e, ok := env[name]; ok && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
		return ""
	}
	if fieldRef("IMQTT_NODE_ID") != "metadata.name" {
		t.Error("IMQTT_NODE_ID does not come from the pod name (fieldRef metadata.name)")
	}
	if fieldRef("POD_IP") != "status.podIP" {
		t.Error("POD_IP does not come from status.podIP")
	}
	if v := env["IMQTT_ADVERTISE_MQTT"].Value; v != "$(POD_IP):1883" {
		t.Errorf("IMQTT_ADVERTISE_MQTT = %q, want $(POD_IP):1883", v)
	}
	if v := env["IMQTT_ADVERTISE_WS"].Value; v != "ws://$(POD_IP):8080/mqtt" {
		t.Errorf("IMQTT_ADVERTISE_WS = %q, want ws://$(POD_IP):8080/mqtt", v)
	}

	// Secret references name the example Secret's keys.
	s := one[*secret](t, m, "Secret")
	if !strings.Contains(readFile(t, m.file[s]), "EXAMPLE ONLY") {
		t.Errorf("%s is not marked as an example", m.file[s])
	}
	for _, v := range s.StringData {
		if !strings.Contains(v, "CHANGE-ME") {
			t.Errorf("example Secret value %q is not an obvious placeholder", v)
		}
	}
	for _, name := range []string{"IMQTT_MONGO_URI", "IMQTT_REDIS_URL", "IMQTT_ADMIN_TOKEN"} {
		e := env[name]
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s does not come from the Secret", name)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != s.Metadata.Name {
			t.Errorf("%s: Secret %q, the example is %q", name, ref.Name, s.Metadata.Name)
		}
		if _, ok := s.StringData[ref.Key]; !ok {
			t.Errorf("%s: key %q is not in the example Secret", name, ref.Key)
		}
	}

	// Volumes: every mount has its volume; the config volume is the
	// ConfigMap and holds the file IMQTT_CONFIG names; /data is IMQTT_DATA_DIR.
	cm := one[*configMap](t, m, "ConfigMap")
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
		if !slices.ContainsFunc(pod.Volumes, func(v volume) bool {
			return v.Name == vm.Name && (v.ConfigMap == nil || v.ConfigMap.Name == cm.Metadata.Name)
		}) {
			t.Errorf("volumeMount %s: no such volume (or not ConfigMap %s)", vm.Name, cm.Metadata.Name)
		}
	}
	cfgPath := env["IMQTT_CONFIG"].Value
	if dir, file := filepath.Split(cfgPath); mounts[filepath.Clean(dir)] == "" || cm.Data[file] == "" {
		t.Errorf("IMQTT_CONFIG %q is not a key of the mounted ConfigMap", cfgPath)
	}
	if dd := env["IMQTT_DATA_DIR"].Value; dd == "" || mounts[dd] == "" {
		t.Errorf("IMQTT_DATA_DIR %q is not a mounted volume (the root file system is read-only)", dd)
	}

	// The drain fits in the grace period: drain-period from the config,
	// and imqttd bounds its whole shutdown to 30 s (cmd/imqttd/main.go).
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["imqttd.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	drain, err := time.ParseDuration(fmt.Sprint(cfg["drain-period"]))
	if err != nil {
		t.Fatalf("configmap drain-period: %v", err)
	}
	grace := time.Duration(0)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace < max(drain, 30*time.Second)+15*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v leaves no room for the drain (%v) and the 30 s shutdown bound", grace, drain)
	}

	// The Service reaches the pods' ports.
	svc := one[*service](t, m, "Service")
	if !subset(svc.Spec.Selector, labels) {
		t.Errorf("Service selector %v does not match the pod labels %v", svc.Spec.Selector, labels)
	}
	seen := map[int]bool{}
	for _, p := range svc.Spec.Ports {
		seen[p.Port] = true
		if !portOK(p.TargetPort) {
			t.Errorf("Service port %d: targetPort %+v is no container port", p.Port, p.TargetPort)
		}
	}
	if !seen[1883] || !seen[8080] {
		t.Errorf("Service ports %v, want 1883 and 8080", seen)
	}
	if svc.Spec.Type != "LoadBalancer" && svc.Spec.Type != "NodePort" {
		t.Errorf("Service type %q", svc.Spec.Type)
	}

	p := one[*pdb](t, m, "PodDisruptionBudget")
	if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.Int != 1 || p.Spec.MaxUnavailable.IsStr {
		t.Error("PodDisruptionBudget: want maxUnavailable 1")
	}
	if !subset(p.Spec.Selector.MatchLabels, labels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels", p.Spec.Selector.MatchLabels)
	}

	h := one[*hpa](t, m, "HorizontalPodAutoscaler")
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Metadata.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, not the Deployment", ref)
	}
	if h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < h.Spec.MinReplicas {
		t.Errorf("HPA replicas %d..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
}

var varRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func typeMetaOf(o any) (typeMeta, bool) {
	switch v := o.(type) {
	case *deployment:
		return v.typeMeta, true
	case *service:
		return v.typeMeta, true
	case *configMap:
		return v.typeMeta, true
	case *secret:
		return v.typeMeta, true
	case *pdb:
		return v.typeMeta, true
	case *hpa:
		return v.typeMeta, true
	}
	return typeMeta{}, false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
