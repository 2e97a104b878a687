package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
	"github.com/playbookstudio/gateway/internal/llm"
)

// llmCaller is callerOf as the model endpoint counts it.
func llmCaller(c echo.Context) llm.Caller {
	w := callerOf(c)
	return llm.Caller{Tenant: w.Tenant, UserID: w.ID, UserName: w.Name}
}

// handleLLMCompletions is the OpenAI-compatible endpoint the agent
// extension talks to, with its workspace's token.
func handleLLMCompletions(g *llm.Gateway, budget int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, llm.MaxRequestBytes+1))
		if err != nil {
			return apierror.Wrap(http.StatusBadRequest, "bad_request", "The request body could not be read.", err)
		}
		if len(body) > llm.MaxRequestBytes {
			return apierror.New(http.StatusRequestEntityTooLarge, "too_large", "The conversation is too long to send; start a new task or clear older messages.")
		}
		err = g.Complete(c.Request().Context(), llmCaller(c), body, c.Response())
		var pe *llm.ProviderError
		switch {
		case err == nil:
			return nil
		case errors.Is(err, llm.ErrNoModel):
			return apierror.New(http.StatusServiceUnavailable, "no_model", "No AI model is configured on this Playbook Studio. An administrator sets LLM_BASE_URL, LLM_MODEL and LLM_API_KEY on the gateway; meanwhile, start from a template.")
		case errors.Is(err, llm.ErrExhausted):
			return apierror.New(http.StatusTooManyRequests, "token_budget_exhausted", fmt.Sprintf("Your organisation's AI token budget for today (%d tokens) is used up. It resets at midnight UTC.", budget))
		case errors.As(err, &pe):
			return apierror.Wrap(pe.Status, "llm_error", "The AI model could not answer: "+pe.Message+" ("+errMessage(pe.Err)+").", err)
		case errors.Is(err, context.Canceled):
			return nil
		}
		return apierror.Wrap(http.StatusServiceUnavailable, "unavailable", "The AI model cannot be used right now.", err)
	}
}

func errMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
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

// handleIntegrationProfiles lists the tenant's integration profiles (name,
// base URL, auth method; never secrets). Profiles get their own store in a
// later change; until then the list is honestly empty.
func handleIntegrationProfiles() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"profiles": []any{}})
	}
}
