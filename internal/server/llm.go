package server

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/fault"
	"github.com/playbookstudio/gateway/internal/llm"
	"github.com/playbookstudio/gateway/internal/metrics"
)

// llmCaller is callerOf as the model endpoint counts it.
func llmCaller(c echo.Context) llm.Caller {
	w := callerOf(c)
	return llm.Caller{Tenant: w.Tenant, UserID: w.ID, UserName: w.Name}
}

// handleLLMCompletions is the OpenAI-compatible endpoint the agent
// extension talks to, with its workspace's token. Each call is counted in
// the metrics (by result, and its tokens), not in the audit log: an agent
// makes hundreds of calls a day, which would bury the sign-ins and
// activations the admin audit view is for.
func handleLLMCompletions(g *llm.Gateway, m *metrics.Metrics) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, llm.MaxRequestBytes+1))
		if err != nil {
			return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
		}
		if len(body) > llm.MaxRequestBytes {
			return apierror.New(http.StatusRequestEntityTooLarge, "too_large", "The conversation is too long to send; start a new task or clear older messages.")
		}
		caller := llmCaller(c)
		u, err := g.Complete(c.Request().Context(), caller, body, c.Response())
		countLLMCall(m, caller.Tenant, u, err)
		var pe *llm.ProviderError
		switch {
		case err == nil:
			return nil
		case errors.Is(err, context.Canceled):
			// The client went away: there is no one to answer.
			return nil
		case errors.Is(err, llm.ErrNoModel):
			return apierror.New(http.StatusServiceUnavailable, "no_model", "No AI model is configured on this Playbook Studio. An administrator sets LLM_BASE_URL, LLM_MODEL and LLM_API_KEY on the gateway; meanwhile, start from a template.")
		case fault.KindOf(err) != 0:
			// token_budget_exhausted (429, Retry-After: the seconds until
			// midnight UTC) and refused requests (400 llm_error).
			return refusal(c, err, nil)
		case errors.As(err, &pe):
			// pe.Message says what happened in words; the cause can name
			// the provider's address and the transport, so it goes only
			// to the log.
			return apierror.Wrap(pe.Status, "llm_error", "The AI model could not answer: "+pe.Message+".", err)
		}
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The AI model cannot be used right now.", err)
	}
}

// llmResult is the result label of a finished call.
func llmResult(err error) string {
	var pe *llm.ProviderError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, llm.ErrExhausted):
		return "exhausted"
	case errors.Is(err, llm.ErrNoModel):
		return "no_model"
	case fault.KindOf(err) == fault.Invalid:
		return "invalid"
	case errors.As(err, &pe):
		return "provider_error"
	}
	return "unavailable"
}

// countLLMCall adds one call and the tokens charged for it.
func countLLMCall(m *metrics.Metrics, tenant string, u llm.Usage, err error) {
	m.LLMCalls.WithLabelValues(tenant, llmResult(err)).Inc()
	if u.PromptTokens > 0 {
		m.LLMTokens.WithLabelValues(tenant, "prompt").Add(float64(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		m.LLMTokens.WithLabelValues(tenant, "completion").Add(float64(u.CompletionTokens))
	}
}

func handleLLMUsage(g *llm.Gateway) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := g.Usage(c.Request().Context(), llmCaller(c).Tenant)
		if err != nil {
			return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "Token use cannot be read right now.", err)
		}
		return c.JSON(http.StatusOK, u)
	}
}
