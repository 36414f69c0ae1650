import Glibc

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator whose whole state is one word, so a
/// property test's inputs are fixed by the seed it starts from and a failure can be replayed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The seed this generator started from (for a failure's message: see `TestSeed.replay`).
    public let seed: UInt64
    public private(set) var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// Where property tests take their seeds. Each test names a fixed seed (so every run is the same);
/// `VSWIFT_TEST_SEED` in the environment replaces it, to replay a failure or to explore:
///
///     VSWIFT_TEST_SEED=0x1f swift test --skip-build --filter ClassifierPropertyTests
///     VSWIFT_TEST_SEED=random swift test --skip-build --filter ClassifierPropertyTests
///
/// A failing expectation names its seed as `VSWIFT_TEST_SEED=…` (see `replay`): pass that value back.
public enum TestSeed {
    /// The environment variable that overrides every test's seed.
    public static let variable = "VSWIFT_TEST_SEED"

    /// The seed from `VSWIFT_TEST_SEED` (decimal, 0x-hexadecimal, or `random` for a fresh one per
    /// call), or nil when it is unset.
    public static var override: UInt64? {
        guard let raw = getenv(variable) else { return nil }
        guard let text = String(cString: raw).split(whereSeparator: \.isWhitespace).first else { return nil }
        if text == "random" { return UInt64.random(in: 0...UInt64.max) }
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }

    /// `fixed`, unless `VSWIFT_TEST_SEED` says otherwise.
    public static func resolve(_ fixed: UInt64) -> UInt64 { override ?? fixed }

    /// How to replay a seed, for an expectation's message: `VSWIFT_TEST_SEED=0x…`.
    public static func replay(_ seed: UInt64) -> String { "\(variable)=0x\(String(seed, radix: 16))" }
}
