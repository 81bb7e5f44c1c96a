import ArgumentParser
import CJemalloc
import EquicastPosix
import EquicastSim
import Foundation

/// `equicast sim`: the deterministic fleet simulator (EquicastSim) running the agent's protocol core.
struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a fleet running the real protocol core, from one seed.",
        discussion: """
            Scenarios: join (every node joins through one seed), crash (a fraction crashes at once), partition \
            (split, then heal), churn (crashes, restarts with and without state, leaves), rollout (a signed \
            release handed to node 0 spreads until every node has verified it), adversary (5% of the nodes \
            hold the fleet key and send hostile messages for 60 s while 10% of the others crash; failures \
            must still be detected within the bound, and no honest node may stay failed). Options not given are \
            derived from the seed and printed first. Exit codes: 0 passed, 3 safety violation, 4 liveness \
            failure, 5 crash of the code under test; each failure prints the command that reproduces it.
            """)

    @Argument(help: "join, crash, partition, churn, rollout or adversary.") var scenario: String
    @Option(help: "The seed (default: a random one, printed).") var seed: UInt64?
    @Option(name: [.customShort("n"), .long], help: "Number of nodes.") var nodes: Int?
    @Option(help: "Length of the fault phase, simulated seconds.") var duration: Double?
    @Option(help: "Datagram loss probability, 0...1.") var loss: Double?
    @Option(help: "Datagram duplication probability, 0...1.") var duplicate: Double?
    @Option(help: "Least one-way delay, microseconds.") var delayMin: UInt64?
    @Option(help: "Mean one-way delay, microseconds.") var delayMean: UInt64?
    @Option(help: "Per-node upload and download rate, bits per second.") var bandwidth: UInt64?
    @Option(help: "crash: fraction of nodes that crash.") var crashFraction: Double?
    @Option(help: "churn: events per simulated second.") var churnRate: Double?
    @Option(help: "adversary: fraction of nodes that send hostile messages.") var adversaries: Double?
    @Option(
        help: "adversary: the attacks, comma-separated (default all: \(Simulator.attackNames.joined(separator: ",")))")
    var attacks: String?
    @Option(help: "rollout: the image's size, KiB (random bytes: compressed chunks are as large).")
    var releaseKib: Int?
    @Option(help: "rollout: when node 0 gets the release, simulated seconds (after the join has settled).")
    var rolloutAt: Double?
    @Option(help: "Fraction of slow nodes.") var slow: Double?
    @Option(help: "Largest clock drift, parts per million.") var drift: Int?
    @Option(help: "Gossip interval, ms (the agent's GossipInterval).") var gossipInterval: UInt64?
    @Option(help: "Probe interval, ms (the agent's ProbeInterval).") var probeInterval: UInt64?
    @Option(help: "Probe timeout, ms (the agent's ProbeTimeout).") var probeTimeout: UInt64?
    @Option(help: "Failure bound, ms (the agent's HeartbeatTimeout).") var heartbeatTimeout: UInt64?
    @Flag(help: "No loss, duplication, slow nodes or drift unless given: for measuring.") var clean = false
    @Option(help: "Write the per-round series as CSV to this file.") var csv: String?
    @Option(help: "Draw the convergence curve as SVG to this file.") var plot: String?
    @Option(help: "Threads to run nodes on (default: the online cores); results do not depend on it.")
    var threads: Int?

    func run() throws {
        guard let kind = Scenario(rawValue: scenario) else {
            throw ValidationError(
                "unknown scenario '\(scenario)' (join, crash, partition, churn, rollout, adversary)")
        }
        let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
        var overrides = SimOverrides()
        overrides.nodeCount = nodes
        overrides.faultPhase = duration.map { UInt64($0 * 1000) }
        overrides.lossProbability = loss
        overrides.duplicateProbability = duplicate
        overrides.delayMin = delayMin
        overrides.delayMean = delayMean
        overrides.bandwidthBitsPerSecond = bandwidth
        overrides.crashFraction = crashFraction
        overrides.churnRate = churnRate
        overrides.adversaryFraction = adversaries
        if let k = releaseKib {
            guard (1...(256 << 10)).contains(k) else { throw ValidationError("--release-kib must be 1...262144") }
            overrides.releaseBytes = k << 10
        }
        if let r = rolloutAt {
            guard r >= 0 && r <= 86_400 else { throw ValidationError("--rollout-at must be 0...86400 seconds") }
            overrides.rolloutAt = UInt64(r * 1000)
        }
        overrides.slowFraction = slow
        overrides.clockDriftPPM = drift
        overrides.clean = clean
        if let n = nodes, n < 2 || n > 1 << 22 { throw ValidationError("--nodes must be 2...4194304") }
        if let t = threads, t < 1 || t > 64 { throw ValidationError("--threads must be 1...64") }
        let threadCount = threads ?? max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        for (name, p) in [
            ("loss", loss), ("duplicate", duplicate), ("crash-fraction", crashFraction), ("slow", slow),
            ("adversaries", adversaries),
        ] {
            if let p, !(0...1).contains(p) { throw ValidationError("--\(name) must be between 0 and 1") }
        }
        var options = SimOptions.derive(seed: seed, scenario: kind, overrides: overrides)
        if let attacks {
            var picked: [Int] = []
            for name in attacks.split(separator: ",") {
                guard let k = Simulator.attackNames.firstIndex(of: String(name)) else {
                    throw ValidationError(
                        "unknown attack '\(name)' (\(Simulator.attackNames.joined(separator: ", ")))")
                }
                picked.append(k)
            }
            guard !picked.isEmpty else { throw ValidationError("--attacks names none") }
            options.attacks = picked
        }
        if let g = gossipInterval { options.membership.gossipInterval = g }
        if let p = probeInterval { options.membership.probeInterval = p }
        if let p = probeTimeout { options.membership.probeTimeout = p }
        if let h = heartbeatTimeout { options.membership.heartbeatTimeout = h }
        if let (field, reason) = options.membership.validate() { throw ValidationError("\(field): \(reason)") }

        let repro = reproduceCommand(seed: seed)
        print(options.description)
        Signals.reportCrashes(
            "\nCRASH: the code under test trapped.\nreproduce: \(repro)\n", exitCode: SimOutcome.crash.rawValue)
        let wallStart = DispatchTime.now()
        let simulator = Simulator(options: options, threads: threadCount)
        let outcome = simulator.run()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - wallStart.uptimeNanoseconds) / 1e9
        let report = SimReport(simulator: simulator, outcome: outcome)
        print(report.summary)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let eventsPerSecond = Double(report.eventsHandled) / max(wall, 1e-9)
        print(
            "simulation: \(report.eventsHandled) events in \(String(format: "%.1f", wall)) s wall on "
                + "\(simulator.threadCount) thread\(simulator.threadCount == 1 ? "" : "s") "
                + "(\(Int(eventsPerSecond)) events/s), peak RSS \(usage.ru_maxrss / 1024) MiB, \(allocator())")
        if let csv {
            try report.csv.write(toFile: csv, atomically: true, encoding: .utf8)
        }
        if let plot {
            let title = "equicast sim \(scenario), N = \(options.nodeCount), seed \(seed)"
            let svg = SimPlot.svg(
                title: title, series: [SimPlot.series(report)], markers: SimPlot.markers(report))
            try svg.write(toFile: plot, atomically: true, encoding: .utf8)
        }
        if outcome != .passed {
            print("reproduce: \(repro)")
            throw ExitCode(outcome.rawValue)
        }
    }

    /// This invocation with its seed made explicit, minus the output files.
    func reproduceCommand(seed: UInt64) -> String {
        var args = Array(CommandLine.arguments.dropFirst())
        var i = 0
        while i < args.count {
            if args[i] == "--csv" || args[i] == "--plot" {
                args.removeSubrange(i..<min(i + 2, args.count))
            } else if args[i].hasPrefix("--csv=") || args[i].hasPrefix("--plot=") {
                args.remove(at: i)
            } else {
                i += 1
            }
        }
        if self.seed == nil { args += ["--seed", String(seed)] }
        return (["equicast"] + args).joined(separator: " ")
    }
}

/// The allocator in use. The CLI links jemalloc (Package.swift): the C library's malloc serves every request over
/// 1 KiB from its bins, and in the heap of a 10,000-node simulation (6 GiB of small tables) that cost about a
/// seventh of the run (bench/results/sim-experiments.txt). jemalloc answers `mallctl` only when it is the one
/// linked.
func allocator() -> String {
    var version: UnsafePointer<CChar>?
    var size = MemoryLayout<UnsafePointer<CChar>?>.size
    guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "C library malloc" }
    // "5.3.0-0-g<commit>": the release is enough.
    return "jemalloc " + String(String(cString: version).prefix { $0 != "-" })
}
