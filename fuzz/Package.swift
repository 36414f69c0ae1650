// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for vswift's parsers (see README.md here, run with fuzz/run.sh).
//
// A separate package so the main build and CI are untouched. It does not depend on the main
// package by path: the main package's modules use unsafe flags, which SwiftPM refuses in a
// dependency, and it exports no library products. Instead Sources/ holds symlinks to the main
// package's sources (whole modules for VSwiftPacket/VSwiftClassifier/VSwiftFlowSyntax; the JSON
// files of VSwiftProtocol, without the client; single files of VSwiftControl,
// compiled into the fuzz target itself so it reaches internal functions such as
// ConfigStore.decode without NIO). Exclusivity checks stay on here: more checks, more findings.
let package = Package(
    name: "vswift-fuzz",
    // ConfigStore, ConfigJournal and SafeDirectory use swift-system (see ../Package.swift).
    dependencies: [.package(url: "https://github.com/apple/swift-system", from: "1.8.1")],
    targets: [
        .systemLibrary(name: "CSupport", path: "Sources/CSupport"),
        // Declares libFuzzer's LLVMFuzzerRunDriver, which each target's main.swift calls.
        .systemLibrary(name: "FuzzDriver", path: "Sources/FuzzDriver"),
        .target(name: "VSwiftPacket"),
        .target(name: "VSwiftClassifier", dependencies: ["VSwiftPacket", "CSupport"]),
        .executableTarget(name: "FuzzFrame", dependencies: ["FuzzDriver", "VSwiftPacket"]),
        .executableTarget(name: "FuzzLISP", dependencies: ["FuzzDriver", "VSwiftPacket"]),
        // The LISP control codec without ControlAuthentication.swift (the one file that needs
        // swift-crypto), so this package builds no BoringSSL.
        .target(name: "VSwiftLISPControl", dependencies: ["VSwiftPacket"]),
        .executableTarget(name: "FuzzLISPControl", dependencies: ["FuzzDriver", "VSwiftLISPControl"]),
        .target(name: "VSwiftFlowSyntax", dependencies: ["VSwiftClassifier", "VSwiftPacket"]),
        .executableTarget(name: "FuzzFlowSyntax", dependencies: ["FuzzDriver", "VSwiftFlowSyntax", "VSwiftClassifier", "VSwiftPacket"]),
        .target(name: "VSwiftProtocol", dependencies: [.product(name: "SystemPackage", package: "swift-system")]),
        .executableTarget(name: "FuzzJSONRPC", dependencies: ["FuzzDriver", "VSwiftProtocol"]),
        .executableTarget(
            name: "FuzzConfig",
            dependencies: ["FuzzDriver", "VSwiftProtocol", .product(name: "SystemPackage", package: "swift-system")]),
    ],
    swiftLanguageModes: [.v6]
)
