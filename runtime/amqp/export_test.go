package amqp

// Test hooks for the external test package.
type Fixture = fixture

var (
	LoadFixture  = loadFixture
	FixtureNames = fixtureNames
)
