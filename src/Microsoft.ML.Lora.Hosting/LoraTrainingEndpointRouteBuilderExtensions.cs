using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.ML.Lora.Hosting.Http;

namespace Microsoft.ML.Lora.Hosting;

/// <summary>Mapping of the training service's HTTP API.</summary>
public static class LoraTrainingEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the API: <c>POST /jobs</c>, <c>GET /jobs</c>, <c>GET /jobs/{id}</c>, <c>POST /jobs/{id}/cancel</c>,
    /// <c>GET /jobs/{id}/events</c> (server-sent events), <c>GET /jobs/{id}/adapter</c> (zip),
    /// <c>POST /jobs/{id}/export-onnx</c>, <c>GET /jobs/{id}/onnx</c>, <c>POST /generate</c>, <c>GET /health</c>
    /// and the dashboard at <c>/</c> and <c>/dashboard</c>; every route requires the token when one is configured.
    /// Needs <c>services.AddLoraTraining(...)</c>.
    /// </summary>
    /// <returns>The route group, for further conventions (e.g. a policy of the host's own).</returns>
    public static RouteGroupBuilder MapLoraTraining(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return LoraTrainingEndpoints.Map(endpoints);
    }
}
