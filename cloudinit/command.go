package cloudinit

// Shell returns the Command that runs script with /bin/sh -c, for the cases
// that need a shell (pipes, redirections, &&). Everything else should be an
// argv: it needs no quoting.
func Shell(script string) Command { return Command{"sh", "-c", script} }

// RunAs returns cmd run as user through runuser(1): runuser -u USER -- CMD.
// runuser sets HOME, USER and LOGNAME to the user's (the working directory
// stays /), so installers that write into the invoking user's home, such as
// Bun's and the Claude CLI's, install for that user. The result does not
// share cmd's backing array.
func RunAs(user string, cmd Command) Command {
	out := make(Command, 0, len(cmd)+4)
	out = append(out, "runuser", "-u", user, "--")
	return append(out, cmd...)
}

// StopOnError returns the Command "set -e". cloud-init runs runcmd as one
// /bin/sh script whose exit status is the LAST command's, so an earlier
// failure goes unreported; put StopOnError first and the script stops at
// the first failing command, which `cloud-init status` then reports as an
// error.
func StopOnError() Command { return Command{"set", "-e"} }
