package good

import "testing"

//task:queue directives in test files are not read, by taskgen or taskvet
func TestNothing(t *testing.T) {}

// task:queue spaced
func sendWelcomeEmailArgsHelper() {}
