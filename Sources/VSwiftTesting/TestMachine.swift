import Foundation

/// What a test may need from the machine it runs on. Outside CI a machine without a tool skips
/// the checks that need it; under CI=true a missing capability must fail the test instead (CI
/// installs everything: scripts/setup.sh), so no skip can hide it. (No `Testing` import here:
/// vswift-bench links this module too; callers record the failure.)
public enum TestMachine {
    /// `CI=true` in the environment, as `.ci/run` sets it.
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// The path of the installed program `name` (tshark, promtool, ovs-ofctl...), or nil.
    public static func tool(_ name: String) -> String? {
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"]
            .map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
