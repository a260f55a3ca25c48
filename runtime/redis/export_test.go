package redis

// IndexKeeper is indexKeeper, for the tests of package redis_test.
const IndexKeeper = indexKeeper
