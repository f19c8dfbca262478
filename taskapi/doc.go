// Package taskapi holds the facts of the Golem Task API contract that Go code
// needs beside the generated messages: the work-dir and environment constants
// (the proto's file options, which a test holds them to; see constants.go)
// and the validation every gtask server applies at its boundary before a
// handler runs.
//
// Ids are used as directory names, so they are checked strictly:
//
//	if err := taskapi.ValidateID("task_id", id); err != nil {
//		// err is a *taskapi.FieldError naming the field and what is wrong
//	}
//	dir := filepath.Join(workDir, id, taskapi.TaskInputsDir()) // ".../task_inputs"
package taskapi
