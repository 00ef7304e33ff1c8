using System;
using System.Collections.Generic;

namespace Virtio.Bench.Soak;

/// <summary>The least-squares slope of y over x.</summary>
internal static class LeastSquares
{
    /// <summary>The slope of the line fitted to the points, or NaN with fewer than three of them (or all at one x).</summary>
    public static double Slope(IReadOnlyList<(double X, double Y)> points)
    {
        int n = points.Count;
        if (n < 3)
        {
            return double.NaN;
        }

        double meanX = 0;
        double meanY = 0;
        foreach ((double x, double y) in points)
        {
            meanX += x;
            meanY += y;
        }

        meanX /= n;
        meanY /= n;
        double sxy = 0;
        double sxx = 0;
        foreach ((double x, double y) in points)
        {
            sxy += (x - meanX) * (y - meanY);
            sxx += (x - meanX) * (x - meanX);
        }

        return sxx == 0 ? double.NaN : sxy / sxx;
    }
}
