package main

import (
	"context"
	"flag"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/peterbourgon/ff/v3"
)

// repoRoot is where docker-compose.yml lives, relative to this package.
const repoRoot = "../.."

// loadCompose loads docker-compose.yml the way `docker compose` does, with an empty
// environment so that the file's defaults are what is checked.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(nil), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return project
}

func env(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil || *v == "" {
		t.Fatalf("service %s does not set %s", s.Name, name)
	}
	return *v
}

func TestComposeServices(t *testing.T) {
	project := loadCompose(t)
	if got, want := project.ServiceNames(), []string{"grafana", "influxdb", "patronus", "postgres"}; !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	images := map[string]*regexp.Regexp{
		"postgres": regexp.MustCompile(`^postgres:16$`),
		"influxdb": regexp.MustCompile(`^influxdb:2\.7$`),
		// A pinned release, never latest.
		"grafana": regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`),
	}
	for name, want := range images {
		if got := project.Services[name].Image; !want.MatchString(got) {
			t.Errorf("%s image %q, want %s", name, got, want)
		}
	}
	ports := map[string]uint32{"patronus": 8080, "grafana": 3000, "influxdb": 8086}
	for name, port := range ports {
		s := project.Services[name]
		if !slices.ContainsFunc(s.Ports, func(p types.ServicePortConfig) bool { return p.Target == port && p.Published != "" }) {
			t.Errorf("%s does not publish port %d: %+v", name, port, s.Ports)
		}
	}
	for name, s := range project.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	for name, deps := range map[string][]string{"patronus": {"postgres", "influxdb"}, "grafana": {"influxdb"}} {
		for _, dep := range deps {
			if d, ok := project.Services[name].DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	project := loadCompose(t)
	// Every stateful service keeps its data in a named volume.
	for service, target := range map[string]string{
		"postgres": "/var/lib/postgresql/data",
		"influxdb": "/var/lib/influxdb2",
		"grafana":  "/var/lib/grafana",
	} {
		i := slices.IndexFunc(project.Services[service].Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == target })
		if i < 0 {
			t.Errorf("%s has no volume at %s", service, target)
			continue
		}
		v := project.Services[service].Volumes[i]
		if _, declared := project.Volumes[v.Source]; v.Type != types.VolumeTypeVolume || !declared {
			t.Errorf("%s's %s is %s %q, want a declared named volume", service, target, v.Type, v.Source)
		}
	}
	// Grafana gets the repository's provisioning and dashboards, read-only, where the
	// dashboard provider looks for them.
	grafana := project.Services["grafana"]
	mounts := map[string]string{}
	for _, v := range grafana.Volumes {
		if v.Type == types.VolumeTypeBind {
			if !v.ReadOnly {
				t.Errorf("grafana mounts %s writable", v.Source)
			}
			mounts[v.Target] = v.Source
		}
	}
	root, _ := filepath.Abs(repoRoot)
	for target, want := range map[string]string{
		"/etc/grafana/provisioning":   filepath.Join(root, "deploy/grafana/provisioning"),
		"/var/lib/grafana/dashboards": filepath.Join(root, "deploy/grafana/dashboards"),
	} {
		if mounts[target] != want {
			t.Errorf("grafana mounts %q at %s, want %q", mounts[target], target, want)
		}
	}
	for _, file := range []string{
		"deploy/grafana/provisioning/datasources/influxdb.yaml",
		"deploy/grafana/provisioning/dashboards/patronus.yaml",
		"deploy/grafana/dashboards/patronus.json",
	} {
		if _, err := os.Stat(filepath.Join(root, file)); err != nil {
			t.Errorf("grafana needs %s: %v", file, err)
		}
	}
	provider, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/dashboards/patronus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(provider), "path: /var/lib/grafana/dashboards") {
		t.Error("the dashboard provider does not read /var/lib/grafana/dashboards, where compose mounts them")
	}
	// The datasource's ${VARS} are all set on the grafana service.
	datasource, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/datasources/influxdb.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^[^#]*\$\{(\w+)\}`).FindAllStringSubmatch(string(datasource), -1) {
		env(t, grafana, m[1])
	}
}

func TestComposeBuildsPatronus(t *testing.T) {
	project := loadCompose(t)
	build := project.Services["patronus"].Build
	if build == nil {
		t.Fatal("patronus is not built from the repository")
	}
	root, _ := filepath.Abs(repoRoot)
	if build.Context != root {
		t.Errorf("build context %q, want the repository root %q", build.Context, root)
	}
	dockerfile, err := os.ReadFile(filepath.Join(build.Context, build.Dockerfile))
	if err != nil {
		t.Fatalf("read %s: %v", build.Dockerfile, err)
	}
	var stages []string
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 && strings.EqualFold(fields[0], "FROM") {
			stages = append(stages, fields[1])
		}
	}
	if len(stages) != 2 || stages[0] != "golang:1.26" {
		t.Errorf("Dockerfile stages %v, want a golang:1.26 builder and a runtime image", stages)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/patronus", "COPY --from=build"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// TestComposePatronusSettings checks that every PATRONUS_* variable compose sets is a setting
// the binary has, that the values parse and pass validation, and that they point at the
// other services with the credentials those services are given.
func TestComposePatronusSettings(t *testing.T) {
	project := loadCompose(t)
	fs := flag.NewFlagSet("compose", flag.ContinueOnError)
	var c config
	registerFlags(fs, &c)
	known := map[string]string{} // variable -> flag
	fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = f.Name })

	// The variables go through the environment and the binary's own loader (ff), so a name
	// the loader would not read is caught even if it looks right.
	set := map[string]string{}
	for name, s := range project.Services {
		for key, value := range s.Environment {
			if !strings.HasPrefix(key, envPrefix+"_") {
				continue
			}
			if name != "patronus" {
				t.Errorf("service %s sets %s", name, key)
				continue
			}
			if _, ok := known[key]; !ok {
				t.Errorf("%s is not a setting of patronus", key)
				continue
			}
			if value == nil {
				t.Errorf("%s has no value", key)
				continue
			}
			t.Setenv(key, *value)
			set[key] = *value
		}
	}
	if err := ff.Parse(fs, nil, envOptions()...); err != nil {
		t.Fatalf("compose's PATRONUS_* settings do not parse: %v", err)
	}
	for key, value := range set {
		want := flag.NewFlagSet("want", flag.ContinueOnError)
		registerFlags(want, new(config))
		if err := want.Set(known[key], value); err != nil {
			t.Fatalf("%s=%q: %v", key, value, err)
		}
		if got := fs.Lookup(known[key]).Value.String(); got != want.Lookup(known[key]).Value.String() {
			t.Errorf("%s=%q: the binary read %q", key, value, got)
		}
	}
	if err := c.validate(); err != nil {
		t.Fatalf("compose's settings do not validate: %v", err)
	}

	patronus, influx, postgres := project.Services["patronus"], project.Services["influxdb"], project.Services["postgres"]
	for _, required := range []string{"PATRONUS_LISTEN", "PATRONUS_DATABASE_URL", "PATRONUS_INFLUX_URL", "PATRONUS_INFLUX_TOKEN",
		"PATRONUS_INFLUX_ORG", "PATRONUS_INFLUX_BUCKET", "PATRONUS_ADMIN_TOKEN"} {
		env(t, patronus, required)
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil || !strings.HasPrefix(c.Listen, "0.0.0.0:") {
		t.Errorf("PATRONUS_LISTEN %q does not listen on every interface of the container", c.Listen)
	}
	if !slices.ContainsFunc(patronus.Ports, func(p types.ServicePortConfig) bool { return strconv.Itoa(int(p.Target)) == port }) {
		t.Errorf("PATRONUS_LISTEN port %s is not the published container port", port)
	}

	// The spool holds acknowledged traffic until InfluxDB has it: it must outlive the container.
	if !slices.ContainsFunc(patronus.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == c.spoolDir() && project.Volumes[v.Source].Name != ""
	}) {
		t.Errorf("the spool directory %q is not a named volume of the patronus service", c.spoolDir())
	}

	db, err := url.Parse(c.DatabaseURL)
	if err != nil {
		t.Fatalf("PATRONUS_DATABASE_URL: %v", err)
	}
	password, _ := db.User.Password()
	if db.Scheme != "postgres" || db.Hostname() != "postgres" || db.User.Username() != env(t, postgres, "POSTGRES_USER") ||
		password != env(t, postgres, "POSTGRES_PASSWORD") || strings.TrimPrefix(db.Path, "/") != env(t, postgres, "POSTGRES_DB") {
		t.Errorf("PATRONUS_DATABASE_URL %s does not match the postgres service", db.Redacted())
	}

	if u, err := url.Parse(c.InfluxURL); err != nil || u.Hostname() != "influxdb" || u.Port() != "8086" {
		t.Errorf("PATRONUS_INFLUX_URL %q is not the influxdb service", c.InfluxURL)
	}
	if c.InfluxToken != env(t, influx, "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN") || c.InfluxOrg != env(t, influx, "DOCKER_INFLUXDB_INIT_ORG") ||
		c.InfluxBucket != env(t, influx, "DOCKER_INFLUXDB_INIT_BUCKET") {
		t.Error("patronus's InfluxDB token, org or bucket is not what the influxdb service is initialised with")
	}
	if env(t, influx, "DOCKER_INFLUXDB_INIT_MODE") != "setup" {
		t.Error("influxdb is not initialised (DOCKER_INFLUXDB_INIT_MODE=setup)")
	}
	env(t, influx, "DOCKER_INFLUXDB_INIT_USERNAME")
	// influx setup refuses passwords shorter than 8 characters, and the image's entrypoint
	// reads only these DOCKER_INFLUXDB_INIT_* variables: a misspelt one is silently ignored.
	if len(env(t, influx, "DOCKER_INFLUXDB_INIT_PASSWORD")) < 8 {
		t.Error("DOCKER_INFLUXDB_INIT_PASSWORD is shorter than the 8 characters influx setup requires")
	}
	initVars := []string{"MODE", "USERNAME", "PASSWORD", "ORG", "BUCKET", "RETENTION", "ADMIN_TOKEN", "CLI_CONFIG_NAME"}
	for key := range influx.Environment {
		if name, ok := strings.CutPrefix(key, "DOCKER_INFLUXDB_INIT_"); ok && !slices.Contains(initVars, name) {
			t.Errorf("influxdb sets %s, which the influxdb:2.7 image does not read", key)
		}
	}
	if r, ok := influx.Environment["DOCKER_INFLUXDB_INIT_RETENTION"]; ok && r != nil && !regexp.MustCompile(`^(\d+[smhdw])+$`).MatchString(*r) {
		t.Errorf("DOCKER_INFLUXDB_INIT_RETENTION %q is not an influx duration", *r)
	}

	grafana := project.Services["grafana"]
	// Grafana queries with InfluxQL: InfluxDB 2.x maps bucket "db" (or "db/rp") to database db.
	database, _, _ := strings.Cut(c.InfluxBucket, "/")
	if env(t, grafana, "INFLUX_URL") != c.InfluxURL || env(t, grafana, "INFLUX_TOKEN") != c.InfluxToken ||
		env(t, grafana, "INFLUX_DATABASE") != database {
		t.Error("grafana reads another InfluxDB, database or token than patronus writes to")
	}
}

// TestDockerfileSettingsAreKnown checks that every PATRONUS_* variable the image sets is a
// setting of the binary, read by its loader and valid.
func TestDockerfileSettingsAreKnown(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	registerFlags(fs, new(config))
	found := 0
	for _, line := range strings.Split(string(dockerfile), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			key, value, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(key, envPrefix+"_") {
				continue
			}
			found++
			var flagName string
			fs.VisitAll(func(f *flag.Flag) {
				if envName(f.Name) == key {
					flagName = f.Name
				}
			})
			if flagName == "" {
				t.Errorf("the Dockerfile sets %s, which is not a setting of patronus", key)
				continue
			}
			if err := fs.Set(flagName, value); err != nil {
				t.Errorf("the Dockerfile sets %s=%q: %v", key, value, err)
			}
		}
	}
	if found == 0 {
		t.Fatal("the Dockerfile sets no PATRONUS_* variable; the image must listen beyond loopback (PATRONUS_LISTEN)")
	}
}
