package amqp

// Test hooks for the external test package.
type Fixture = fixture

var (
	LoadFixture  = loadFixture
	FixtureNames = fixtureNames
)

// LazyDecode switches where deliveries are decoded (benchmarks).
var LazyDecode = &lazyDecode
