import EquicastCore

/// Log levels. The default, info, logs state changes (members joining and failing, syncs failing), never one
/// line per packet; debug adds refused frames.
public enum LogLevel: Int, Comparable, Sendable {
    case error = 0
    case warning = 1
    case info = 2
    case debug = 3

    public init?(name: String) {
        switch name.asciiLowercased {
        case "error": self = .error
        case "warning", "warn": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    /// syslog priority prefix, which journald reads from a unit's stderr (sd-daemon(3)).
    var prefix: String {
        switch self {
        case .error: return "<3>"
        case .warning: return "<4>"
        case .info: return "<6>"
        case .debug: return "<7>"
        }
    }
}

/// Lines to stderr with a syslog priority prefix; journald turns them into levelled entries.
public struct Logger {
    public var level: LogLevel

    public init(level: LogLevel) { self.level = level }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        if level <= self.level { printError(level.prefix + message()) }
    }
}
