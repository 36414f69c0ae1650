// swift-tools-version:6.1
import PackageDescription

// The packet path is compiled with exclusivity checks off: it works on raw UMEM pointers, never on
// Swift-managed storage that the checks protect.
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"])]

// Module layering (see DESIGN.md): Packet ← Classifier ← Datapath ← Control ← executables; flow
// syntax (Classifier ← FlowSyntax ← Control), the flow cache's control side (Classifier ← FlowCache)
// and the test harness (Datapath ← Testing ← tests, bench)
// sit beside it. Protocol (the control socket's language and its client) needs none of them:
// Protocol ← Control, and vswiftctl ← Protocol alone (ClientLinkageTests checks it links no libxdp,
// libbpf or NIO). Metrics (the Prometheus endpoint) sits on Control, for vswiftd alone.
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
        // FileDescriptor, Errno, FilePath, Stat for the control path and the client (already resolved
        // through swift-nio).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
        // The metrics endpoint's text format (vswiftd only: never linked into vswiftctl).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // HMAC-SHA-1 and HMAC-SHA-256 for LISP Map-Register/Map-Notify authentication.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
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
        // The LISP map-cache (RFC 9301): the workers' immutable lookup snapshots and the control
        // side's database (TTL, refresh, LRU) that builds them; the packet types and nothing else.
        .target(name: "VSwiftMapCache", dependencies: ["VSwiftPacket"], swiftSettings: fast),
        // The flow cache's control side (issue 17): which flows an XDP cache entry may carry, the
        // entries as installed, and revalidation after a change. Pure data on the classifier's
        // types, no I/O and no kernel, so the datapath and the XDP side's installer share it and
        // its tests need neither.
        .target(name: "VSwiftFlowCache", dependencies: ["VSwiftClassifier", "VSwiftPacket"], swiftSettings: fast),
        .target(name: "VSwiftDatapath", dependencies: ["CXDP", "CSupport", "VSwiftPacket", "VSwiftClassifier", "VSwiftMapCache", "VSwiftFlowCache"], swiftSettings: fast),
        // What both ends of the control socket share (JSON, JSON-RPC, params, reports, text formats,
        // the client), and nothing of the datapath.
        .target(name: "VSwiftProtocol", dependencies: [.product(name: "SystemPackage", package: "swift-system")]),
        // The packet path without a kernel (as NIO has NIOEmbedded): PipelineHarness drives a real
        // worker over rings in process memory, for the datapath's tests and the in-memory benchmark.
        // It reaches the worker through the datapath's `package` declarations. Also the support every
        // test target shares: frame builders, the seeded generator of the property tests, commands
        // and network namespaces.
        .target(
            name: "VSwiftTesting",
            dependencies: ["VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftMapCache", "VSwiftPacket", "CXDP"],
            swiftSettings: fast),
        .target(
            name: "VSwiftControl",
            dependencies: [
                "VSwiftProtocol", "VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket",
                "VSwiftLISPAgent", "VSwiftMapCache", "VSwiftLISPControl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        // The metrics endpoint (`vswiftd --metrics`): the service's counters in Prometheus' text
        // format over HTTP (NIOHTTP1).
        .target(
            name: "VSwiftMetrics",
            dependencies: [
                "VSwiftControl", "VSwiftProtocol",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // LISP control messages (RFC 9301: Map-Request/Reply/Register/Notify, ECM; RFC 8060 instance-id
        // LCAF) as values, their defensive decoding, and HMAC authentication. Control path only.
        .target(
            name: "VSwiftLISPControl",
            dependencies: ["VSwiftPacket", .product(name: "Crypto", package: "swift-crypto")]),
        // The xTR's LISP control plane (RFC 9301) as a state machine without I/O (as NIO's protocol
        // handlers are): registers local EIDs with map-servers, answers Map-Requests for them, asks
        // map-resolvers for remote EIDs and keeps the map-cache. Time, datagrams and the workers'
        // misses go in; datagrams to send and map-cache snapshots to publish come out.
        .target(
            name: "VSwiftLISPAgent",
            dependencies: ["VSwiftLISPControl", "VSwiftMapCache", "VSwiftPacket"]),
        .executableTarget(
            name: "vswiftd",
            dependencies: [
                "VSwiftControl", "VSwiftProtocol", "VSwiftMetrics",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "vswiftctl",
            dependencies: [
                "VSwiftProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .executableTarget(
            name: "vswift-bench",
            dependencies: [
                "VSwiftDatapath", "VSwiftTesting", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftMapCache", "VSwiftPacket", "CXDP", "CSupport",
                "VSwiftFlowCache",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            swiftSettings: fast),
        .testTarget(name: "VSwiftPacketTests", dependencies: ["VSwiftPacket", "VSwiftTesting"]),
        .testTarget(name: "VSwiftClassifierTests", dependencies: ["VSwiftClassifier", "VSwiftTesting"]),
        .testTarget(name: "VSwiftFlowCacheTests", dependencies: ["VSwiftFlowCache", "VSwiftClassifier", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(name: "VSwiftFlowSyntaxTests", dependencies: ["VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(
            name: "VSwiftDatapathTests",
            dependencies: ["VSwiftDatapath", "VSwiftTesting", "VSwiftClassifier", "VSwiftMapCache", "VSwiftPacket", "VSwiftFlowCache", "CXDP"]),
        .testTarget(name: "VSwiftMapCacheTests", dependencies: ["VSwiftMapCache", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(name: "VSwiftProtocolTests", dependencies: ["VSwiftProtocol", "VSwiftTesting"]),
        .testTarget(name: "VSwiftLISPControlTests", dependencies: ["VSwiftLISPControl", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(name: "VSwiftLISPAgentTests", dependencies: ["VSwiftLISPAgent", "VSwiftLISPControl", "VSwiftMapCache", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(
            name: "VSwiftControlTests",
            dependencies: ["VSwiftControl", "VSwiftProtocol", "VSwiftDatapath", "VSwiftFlowSyntax", "VSwiftPacket", "VSwiftTesting"]),
        .testTarget(
            name: "VSwiftMetricsTests",
            dependencies: [
                "VSwiftMetrics", "VSwiftControl", "VSwiftProtocol", "VSwiftTesting",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "IntegrationTests", dependencies: ["VSwiftControl", "VSwiftProtocol", "VSwiftTesting", "VSwiftLISPControl", "VSwiftLISPAgent", "VSwiftMapCache", "VSwiftPacket", "CXDP"],
                    exclude: ["Fixtures"]),
        // The bench's pure logic (report formatting, plot script, OVS flow text), no root needed.
        .testTarget(name: "VSwiftBenchTests", dependencies: ["vswift-bench", "CXDP"]),
    ],
    // Swift 6 language mode everywhere: the compiler checks every module for data races.
    swiftLanguageModes: [.v6]
)
