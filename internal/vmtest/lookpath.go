package vmtest

import "os/exec"

func lookPath(c string) (string, error) { return exec.LookPath(c) }
