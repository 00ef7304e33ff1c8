using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Virtio.VhostUserDaemon;

/// <summary>--metrics: the packages' meters through OpenTelemetry's console exporter.</summary>
internal static class MetricsExport
{
    public static readonly string[] Meters = ["Virtio.Blk", "Virtio.Net", "Virtio.Core", "Virtio.VhostUser"];

    /// <summary>Exports every instrument of <see cref="Meters"/> to standard output every <paramref name="seconds"/> seconds, and once more when disposed.</summary>
    public static MeterProvider ToConsole(int seconds) =>
        Sdk.CreateMeterProviderBuilder()
            .AddMeter(Meters)
            .AddConsoleExporter((_, reader) => reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = seconds * 1000)
            .Build();
}
