package generator_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/generator"
	"github.com/taskgen/taskgen/generator/internal/testmodule"
	"github.com/taskgen/taskgen/generator/model"
)

// TestLoad_schedules: the model of a package's schedules, with the
// default entry names (the task's Celery name, then #2, #3 for its other
// schedules without name=); none for a package without schedules.
func TestLoad_schedules(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "schedmodel", map[string][]byte{
		"jobs/jobs.go": []byte(`package jobs

import "context"

//task:schedule every 1h
//task:schedule cron "0 3 * * *" tz=Europe/Paris name=nightly
//task:schedule every 5m offset=0
//task:schedule cron "0 4 * * *"
func tidy(ctx context.Context) error { return nil }
`),
		"plain/plain.go": []byte("package plain\n\nimport \"context\"\n\n//task:queue q\nfunc ping(ctx context.Context) error { return nil }\n"),
	})
	pkgs, errs := generator.Load(generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()})
	require.Empty(t, errs)
	require.Len(t, pkgs, 2)
	jobs, plain := pkgs[0], pkgs[1]
	require.Equal(t, "Schedules", jobs.SchedulesFunc)
	require.Equal(t, []model.Schedule{
		{Name: "jobs.tidy", Every: time.Hour},
		{Name: "nightly", Cron: "0 3 * * *", TimeZone: "Europe/Paris"},
		{Name: "jobs.tidy#2", Every: 5 * time.Minute, HasOffset: true},
		{Name: "jobs.tidy#3", Cron: "0 4 * * *"},
	}, jobs.Tasks[0].Schedules)
	require.Contains(t, jobs.Imports, model.Import{Name: "beat", Path: "github.com/taskgen/taskgen/runtime/beat"})

	require.Empty(t, plain.SchedulesFunc)
	require.Empty(t, plain.Tasks[0].Schedules)
	for _, imp := range plain.Imports {
		require.NotEqual(t, "github.com/taskgen/taskgen/runtime/beat", imp.Path)
	}
}

// TestGenerate_scheduleNamesAcrossPackages: entry names are unique in a
// run, since one beat schedule may hold the entries of several packages.
// (taskvet, which sees one package at a time, cannot report this.)
func TestGenerate_scheduleNamesAcrossPackages(t *testing.T) {
	t.Parallel()
	dir := testmodule.New(t, "schednames", map[string][]byte{
		"a/a.go": []byte("package a\n\nimport \"context\"\n\n//task:schedule every 1m name=sweep\nfunc one(ctx context.Context) error { return nil }\n"),
		"b/b.go": []byte("package b\n\nimport \"context\"\n\n//task:schedule every 2m name=sweep\nfunc two(ctx context.Context) error { return nil }\n"),
	})
	files, errs := generator.Generate(generator.Config{Dir: dir, Patterns: []string{"./..."}, Env: testmodule.Env()})
	require.Len(t, errs, 1)
	require.Equal(t, `b/b.go:5:26: task two: schedule: entry name "sweep" is already the name of a schedule of task one (at a/a.go:5:26): set a distinct name=`,
		errs[0].Error())
	require.Len(t, files, 1, "package a is generated, b is not")
}
