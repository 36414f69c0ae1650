// swift-tools-version:6.1
import PackageDescription

// The packet path is compiled with exclusivity checks off: it works on raw UMEM pointers, never on
// Swift-managed storage that the checks protect.
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"])]

// Module layering (see DESIGN.md): Packet ← Classifier ← Datapath ← Control ← executables; flow
// syntax (Classifier ← FlowSyntax ← Control) and the test harness (Datapath ← Testing ← tests, bench)
// sit beside it.
let package = Package(
    name: "vswift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vswiftd", targets: ["vswiftd"]),
        .executable(name: "vswiftctl", targets: ["vswiftctl"]),
        .executable(name: "vswift-bench", targets: ["vswift-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        // libxdp's ring helpers, libbpf and the Linux uapi headers, plus a few static-inline shims
        // for calls Swift cannot make directly (variadic ioctl, C11 relaxed atomics on raw memory).
        .systemLibrary(name: "CXDP", path: "Sources/CXDP", pkgConfig: "libxdp"),
        .target(name: "VSwiftPacket", swiftSettings: fast),
        // CPU hints (prefetch) for the classifier; header-only.
        .systemLibrary(name: "CSupport", path: "Sources/CSupport"),
        .target(name: "VSwiftClassifier", dependencies: ["VSwiftPacket", "CSupport"], swiftSettings: fast),
        // OVS flow text (ovs-ofctl syntax): parses it into the classifier's FlowRule, Match and
        // FlowAction and prints them back. Control-path code, compiled as it was inside the
        // classifier (the 1M-flow add-flows and dump-flows go through it).
        .target(name: "VSwiftFlowSyntax", dependencies: ["VSwiftClassifier", "VSwiftPacket"], swiftSettings: fast),
        .target(name: "VSwiftDatapath", dependencies: ["CXDP", "CSupport", "VSwiftPacket", "VSwiftClassifier"], swiftSettings: fast),
        // The packet path without a kernel (as NIO has NIOEmbedded): PipelineHarness drives a real
        // worker over rings in process memory, for the datapath's tests and the in-memory benchmark.
        // It reaches the worker through the datapath's `package` declarations.
        .target(
            name: "VSwiftTesting",
            dependencies: ["VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket", "CXDP"],
            swiftSettings: fast),
        .target(
            name: "VSwiftControl",
            dependencies: [
                "VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vswiftd",
            dependencies: [
                "VSwiftControl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vswiftctl",
            dependencies: ["VSwiftControl", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "vswift-bench",
            dependencies: [
                "VSwiftDatapath", "VSwiftTesting", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket", "CXDP", "CSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            swiftSettings: fast),
        .testTarget(name: "VSwiftPacketTests", dependencies: ["VSwiftPacket"]),
        .testTarget(name: "VSwiftClassifierTests", dependencies: ["VSwiftClassifier"]),
        .testTarget(name: "VSwiftFlowSyntaxTests", dependencies: ["VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket"]),
        .testTarget(
            name: "VSwiftDatapathTests",
            dependencies: ["VSwiftDatapath", "VSwiftTesting", "VSwiftClassifier", "VSwiftPacket", "CXDP"]),
        .testTarget(name: "VSwiftControlTests", dependencies: ["VSwiftControl", "VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftPacket"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VSwiftControl", "CXDP"]),
        // The bench's pure logic (report formatting, plot script, OVS flow text), no root needed.
        .testTarget(name: "VSwiftBenchTests", dependencies: ["vswift-bench", "CXDP"]),
    ],
    swiftLanguageModes: [.v5]
)
