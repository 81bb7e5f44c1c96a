// swift-tools-version:6.0
// Equicast: gossip-based firmware distribution for fleets of ARM Linux devices.
//
// Layering (ARCHITECTURE.md): C system modules -> pure byte transforms (Crypto, Compression) -> the sans-IO
// protocol core -> POSIX driver -> the daemon. Every target listed under "device code" is also compiled in
// Embedded Swift by cross/build.sh, so it must stay inside the Embedded subset (typed throws, no Foundation,
// no existentials of non-class protocols).
import PackageDescription

// Release builds of the protocol core and the simulator skip the run-time exclusivity checks, as Embedded Swift
// (the device build) always does; debug builds, and so `swift test`, keep them. The checks cost the simulator
// about 6% of its time at 10,000 nodes.
let uncheckedExclusivity: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

// Debug builds of the core and the agent carry test-only faults (a rogue peer for the process tests), switched on
// by the environment; release builds and cross/ (the device build) compile them out.
let faultInjection: SwiftSetting = .define("EQUICAST_FAULT_INJECTION", .when(configuration: .debug))

let package = Package(
    name: "Equicast",
    products: [
        .executable(name: "equicast", targets: ["equicast"]),
        .executable(name: "equicastd", targets: ["equicastd"]),
        .executable(name: "equicast-bench", targets: ["EquicastBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // MARK: C system libraries and our own C shims
        .systemLibrary(
            name: "CSodium", pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CNetSNMP", pkgConfig: "netsnmp-agent",
            providers: [.apt(["libsnmp-dev"])]),
        .systemLibrary(
            name: "CJemalloc", pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]),
        .target(name: "CEquicastShims"),

        // MARK: device code (also built in Embedded Swift by cross/)
        .target(name: "EquicastCrypto", dependencies: ["CSodium"]),
        .target(name: "EquicastCompression", dependencies: ["CZlib"]),
        .target(
            name: "EquicastCore", dependencies: ["EquicastCrypto", "EquicastCompression"],
            swiftSettings: uncheckedExclusivity + [faultInjection]),
        .target(name: "EquicastPosix", dependencies: ["CEquicastShims", "EquicastCrypto", "EquicastCore"]),
        .target(name: "EquicastSNMP", dependencies: ["CNetSNMP", "EquicastCore"]),
        .target(
            name: "EquicastAgent",
            dependencies: [
                "CEquicastShims", "EquicastCore", "EquicastPosix", "EquicastCrypto", "EquicastCompression",
                "EquicastSNMP",
            ], swiftSettings: [faultInjection]),
        .executableTarget(name: "equicastd", dependencies: ["EquicastAgent", "CEquicastShims", "EquicastCrypto"]),

        // MARK: operator-side and benchmark tools (full Swift)
        .target(
            name: "EquicastSim", dependencies: ["EquicastCore", "EquicastCrypto"], swiftSettings: uncheckedExclusivity),
        .executableTarget(
            name: "equicast",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"), "CJemalloc", "EquicastCrypto",
                "EquicastPosix", "EquicastSim",
            ]),
        .executableTarget(
            name: "EquicastBench", dependencies: ["EquicastCrypto", "EquicastCompression", "EquicastPosix"],
            path: "bench/swift/EquicastBench"),

        // MARK: tests
        .testTarget(name: "EquicastCryptoTests", dependencies: ["EquicastCrypto"]),
        .testTarget(name: "EquicastCompressionTests", dependencies: ["EquicastCompression"]),
        .testTarget(name: "EquicastCoreTests", dependencies: ["EquicastCore", "EquicastCrypto"]),
        .testTarget(name: "EquicastPosixTests", dependencies: ["EquicastPosix", "EquicastCrypto"]),
        .testTarget(name: "EquicastAgentTests", dependencies: ["EquicastAgent"]),
        .testTarget(name: "EquicastSNMPTests", dependencies: ["EquicastSNMP", "EquicastCore"]),
        .testTarget(name: "EquicastSimTests", dependencies: ["EquicastSim", "EquicastCore"]),
        .testTarget(name: "EquicastIntegrationTests", dependencies: ["EquicastCore", "EquicastPosix", "equicastd"]),
    ]
)
