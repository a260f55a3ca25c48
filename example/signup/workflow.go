package signup

import "github.com/taskgen/taskgen/runtime"

// Onboarding returns the sign-up of email as one workflow: CreateAccount,
// then SendWelcome with the account, then NotifySlack with the account on
// #sign-ups (a chain: each step's result is the next step's first
// argument, and each step goes to its own task's queue). If a step fails
// for good, after its retries, the chain stops there and AlertOps gets the
// failed task's id. Its result is NotifySlack's: the text posted.
func Onboarding(email string) runtime.Signature[string] {
	account := CreateAccount.Sig(email)                                   // Signature[Account]
	welcomed := runtime.Chain(account, SendWelcome.Partial())             // Signature[Account]
	notified := runtime.Chain(welcomed, NotifySlack.Partial("#sign-ups")) // Signature[string]
	return notified.OnError(AlertOps.Partial())                           // AlertOps(failed step's id)
}
