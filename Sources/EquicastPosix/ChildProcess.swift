import CEquicastShims

/// A hook command run by `/bin/sh -c` (posix_spawn), watched without blocking from the poll loop.
public final class ChildProcess {
    public let pid: Int32
    public let command: String
    public private(set) var exitCode: Int32?

    /// Starts `command` with the daemon's environment plus `environment` ("NAME=value" strings).
    public init(command: String, environment: [String]) throws(PosixError) {
        self.command = command
        var pid: Int32 = -1
        var copies: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) }
        defer { for c in copies { free(c) } }
        copies.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { p in
                pid = equicast_spawn_shell(command, p, Int32(buffer.count))
            }
        }
        if pid < 0 { throw .syscall(name: "posix_spawn /bin/sh -c \(command)", errno: equicast_errno()) }
        self.pid = pid
    }

    /// The exit code once the command has ended (128 + signal when a signal ended it); nil while it runs.
    public func poll() -> Int32? {
        if let code = exitCode { return code }
        var code: Int32 = 0
        let r = equicast_child_exited(pid, &code)
        if r == 1 {
            exitCode = code
        } else if r < 0 {
            exitCode = 255
        }
        return exitCode
    }

    /// Kills the command and everything it started, and reaps it.
    public func kill() {
        guard exitCode == nil else { return }
        equicast_kill_group(pid)
        var code: Int32 = 0
        for _ in 0..<100 {
            if equicast_child_exited(pid, &code) != 0 { break }
            usleep(10_000)
        }
        exitCode = 128 + 9
    }
}
