import CEquicastShims
import EquicastAgent
import EquicastCore
import EquicastCrypto

/// equicastd: the Equicast device agent.
@main
struct EquicastDaemon {
    static let usage = """
        usage: equicastd COMMAND
          run [--config FILE] [--Key value ...]
                      run the agent; flags override the config file's settings (e.g. --BindAddress 0.0.0.0:7946)
          selftest    run the built-in known-answer and loopback tests; exit status 0 when all pass
          version     print the agent and library versions
        """

    static func main() {
        let args = ProcessArguments.all
        let command = args.count > 1 ? args[1] : ""
        switch command {
        case "run":
            exit(runAgent(Array(args.dropFirst(2))))
        case "selftest":
            exit(runSelfTest())
        case "version", "--version":
            print("equicastd \(AgentVersion.string) (protocol v1, profile Lite; libsodium \(Sodium.version))")
        case "help", "--help", "-h":
            print(usage)
        default:
            printError(command.isEmpty ? "equicastd: no command given" : "equicastd: unknown command '\(command)'")
            printError(usage)
            exit(2)
        }
    }

    static func runAgent(_ flags: [String]) -> Int32 {
        let config: AgentConfig
        let path: String?
        do throws(ConfigError) {
            (config, path) = try AgentConfig.load(arguments: flags)
        } catch {
            printError("equicastd: \(error)")
            return 2
        }
        do throws(AgentError) {
            let daemon = try Daemon(config: config, configPath: path)
            try daemon.run()
            return 0
        } catch {
            printError("equicastd: \(error)")
            return 1
        }
    }

    static func runSelfTest() -> Int32 {
        var test = SelfTest()
        test.run { result in
            print((result.passed ? "PASS  " : "FAIL  ") + result.name + (result.passed ? "" : ": " + result.detail))
        }
        let failed = test.failureCount
        print("selftest: \(test.results.count - failed) passed, \(failed) failed")
        return failed == 0 ? 0 : 1
    }
}
